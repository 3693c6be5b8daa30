//! `[server.http2]`: the HTTP/2 settings of client connections (TLS listeners that offer `h2`
//! by ALPN, plain listeners with `h2c = true`), and the bounds that refuse the published
//! HTTP/2 attacks (rapid reset, CONTINUATION, SETTINGS and PING floods, HPACK bombs).

use serde::Deserialize;

use crate::values::{ByteSize, Duration};

/// `[server.http2]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Conf {
    /// Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Largest decoded header list of a request (SETTINGS_MAX_HEADER_LIST_SIZE); a larger one,
    /// however it is split into CONTINUATION frames or compressed, is refused.
    pub max_header_list: ByteSize,
    /// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE): request body bytes a
    /// client may send ahead of the gateway reading them.
    pub stream_window: ByteSize,
    /// The connection's receive window, over all its streams.
    pub connection_window: ByteSize,
    /// Largest frame payload the gateway accepts (SETTINGS_MAX_FRAME_SIZE, 16KiB to 16MiB).
    pub max_frame: ByteSize,
    /// Response bytes buffered per stream while the client's window is closed.
    pub send_buffer: ByteSize,
    /// Streams a client may reset before the gateway accepted them, at once; more is a rapid
    /// reset (CVE-2023-44487) and ends the connection with ENHANCE_YOUR_CALM.
    pub max_pending_resets: u32,
    /// Streams the gateway may reset for a client's protocol errors on one connection before
    /// it ends the connection with ENHANCE_YOUR_CALM.
    pub max_error_resets: u32,
    /// Control frames (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, RST_STREAM and empty DATA or
    /// CONTINUATION frames) a client may send per second on one connection, on average;
    /// beyond it the connection ends with ENHANCE_YOUR_CALM.
    pub control_frames_per_s: u32,
    /// Control frames a client may send in a burst above that rate.
    pub control_frames_burst: u32,
    /// How long a stream may wait for the client to open its window before the gateway
    /// resets it (a zero-window stall).
    pub send_timeout: Duration,
}

impl Default for Http2Conf {
    fn default() -> Http2Conf {
        Http2Conf {
            max_concurrent_streams: 128,
            max_header_list: ByteSize(32 * 1024),
            stream_window: ByteSize(256 * 1024),
            connection_window: ByteSize(1024 * 1024),
            max_frame: ByteSize(16 * 1024),
            send_buffer: ByteSize(64 * 1024),
            max_pending_resets: 20,
            max_error_resets: 1024,
            control_frames_per_s: 100,
            control_frames_burst: 1000,
            send_timeout: Duration::secs(30),
        }
    }
}

impl Http2Conf {
    /// What is wrong with these settings, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let window = |n: u64| (1..=(1u64 << 31) - 1).contains(&n);
        if self.max_concurrent_streams == 0 {
            out.push((
                "max_concurrent_streams",
                "[server.http2] max_concurrent_streams must be at least 1".into(),
            ));
        }
        if !(1024..=(16 << 20)).contains(&self.max_header_list.0) {
            out.push((
                "max_header_list",
                "[server.http2] max_header_list must be 1KiB to 16MiB".into(),
            ));
        }
        if !window(self.stream_window.0) || self.stream_window.0 < 1024 {
            out.push((
                "stream_window",
                "[server.http2] stream_window must be 1KiB to 2GiB - 1B".into(),
            ));
        }
        if !window(self.connection_window.0) || self.connection_window.0 < self.stream_window.0 {
            out.push((
                "connection_window",
                "[server.http2] connection_window must be at least stream_window, at most 2GiB - 1B"
                    .into(),
            ));
        }
        if !((16 << 10)..(16 << 20)).contains(&self.max_frame.0) {
            out.push((
                "max_frame",
                "[server.http2] max_frame must be 16KiB to 16MiB - 1B".into(),
            ));
        }
        if self.send_buffer.0 < 1024 || self.send_buffer.0 > (1 << 30) {
            out.push((
                "send_buffer",
                "[server.http2] send_buffer must be 1KiB to 1GiB".into(),
            ));
        }
        if self.control_frames_per_s == 0 || self.control_frames_burst == 0 {
            out.push((
                "control_frames_per_s",
                "[server.http2] control_frames_per_s and control_frames_burst must be at least 1"
                    .into(),
            ));
        }
        if self.send_timeout.0.is_zero() {
            out.push((
                "send_timeout",
                "[server.http2] send_timeout must be more than 0".into(),
            ));
        }
        out
    }
}
