//! A TLS connection over a monoio `TcpStream`, client or server side: rustls turns the
//! socket's bytes into plaintext and back; we own the socket and the two ciphertext buffers,
//! so the data path can also read what has arrived without waiting (`read_ready`).

use std::io::{self, BufRead};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
};
use monoio::net::TcpStream;
use rustls::Connection;

use crate::sys::Ready;

/// Ciphertext read buffer: one whole TLS record (16 KiB of data plus its overhead).
const RECORD: usize = 16 * 1024 + 512;

/// Longest wait for close_notify to leave.
const CLOSE_NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// How a stream is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The exchange ended as it should: TLS says so (close_notify).
    Clean,
    /// Something broke mid-answer: no close_notify, so a body framed by the close is seen
    /// as cut short.
    Abort,
}

/// A TLS connection.
pub struct TlsStream {
    tcp: TcpStream,
    tls: Connection,
    /// Ciphertext read from the socket; `rbuf[rpos..]` not yet given to rustls.
    rbuf: Vec<u8>,
    rpos: usize,
    /// Ciphertext rustls produced, being written; `wbuf[..wpos]` already went (a write that
    /// does not wait may leave the rest for later).
    wbuf: Vec<u8>,
    wpos: usize,
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// Runs the handshake of `tls` over `tcp` (the caller bounds it in time).
    pub async fn handshake(tcp: TcpStream, tls: Connection) -> Result<TlsStream, HandshakeError> {
        let mut s = TlsStream {
            tcp,
            tls,
            rbuf: Vec::with_capacity(RECORD),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
        };
        while s.tls.is_handshaking() {
            s.flush().await.map_err(HandshakeError::Io)?;
            if s.tls.is_handshaking() && s.tls.wants_read() {
                match s.fill(None).await {
                    Ok(true) => {}
                    Ok(false) => return Err(HandshakeError::Closed),
                    Err(Fill::Tls(e)) => return Err(HandshakeError::Tls(e)),
                    Err(Fill::Io(e)) => return Err(HandshakeError::Io(e)),
                }
            }
        }
        s.flush().await.map_err(HandshakeError::Io)?;
        Ok(s)
    }

    /// The rustls connection (negotiated version, peer certificates, SNI, ALPN).
    pub fn connection(&self) -> &Connection {
        &self.tls
    }

    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Writes what rustls has to send (after what a write that did not wait left).
    async fn flush(&mut self) -> io::Result<()> {
        loop {
            if self.wpos > 0 {
                self.wbuf.drain(..self.wpos.min(self.wbuf.len()));
                self.wpos = 0;
            }
            if self.wbuf.is_empty() {
                if !self.tls.wants_write() {
                    return Ok(());
                }
                self.tls.write_tls(&mut self.wbuf)?;
            }
            let (res, buf) = self.tcp.write_all(std::mem::take(&mut self.wbuf)).await;
            self.wbuf = buf;
            res?;
            self.wbuf.clear();
        }
    }

    /// Takes what of `data` (plaintext) rustls accepts and sends what the socket takes now,
    /// without waiting; ciphertext the socket did not take waits in `wbuf`, sent first next
    /// time. `Took(0)` with data: blocked until the socket is writable.
    pub fn write_ready(&mut self, data: &[u8]) -> crate::sys::Sent {
        use crate::sys::Sent;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.tcp);
        if !self.push(fd) {
            return Sent::Error;
        }
        if self.wpos < self.wbuf.len() {
            return Sent::Took(0);
        }
        let n = match io::Write::write(&mut self.tls.writer(), data) {
            Ok(n) => n,
            Err(_) => return Sent::Error,
        };
        self.wbuf.clear();
        self.wpos = 0;
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.wbuf).is_err() {
                return Sent::Error;
            }
        }
        if !self.push(fd) {
            return Sent::Error;
        }
        Sent::Took(n)
    }

    /// Gives back the ciphertext buffers while the connection idles (only when they hold
    /// nothing not yet used; each is allocated again by the next read or write).
    pub fn release_buffers(&mut self) {
        if self.rpos >= self.rbuf.len() {
            self.rbuf = Vec::new();
            self.rpos = 0;
        }
        if self.wpos >= self.wbuf.len() {
            self.wbuf = Vec::new();
            self.wpos = 0;
        }
    }

    /// Ciphertext is waiting for the socket.
    pub fn write_pending(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// Sends pending ciphertext while the socket takes it; false on a socket error.
    fn push(&mut self, fd: std::os::fd::RawFd) -> bool {
        while self.wpos < self.wbuf.len() {
            match crate::sys::send_ready(fd, self.wbuf.get(self.wpos..).unwrap_or_default()) {
                crate::sys::Sent::Took(0) => return true,
                crate::sys::Sent::Took(k) => self.wpos += k,
                crate::sys::Sent::Error => return false,
            }
        }
        true
    }

    /// Gives rustls the ciphertext not yet handed over, reading the socket first when there is
    /// none (a read `cancel` can cancel, when given). `Ok(false)`: the peer closed the TCP
    /// connection.
    async fn fill(&mut self, cancel: Option<&CancelHandle>) -> Result<bool, Fill> {
        let mut open = true;
        if self.rpos >= self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
            if self.rbuf.capacity() == 0 {
                // lost to a cancelled read
                self.rbuf.reserve(RECORD);
            }
            let rbuf = std::mem::take(&mut self.rbuf);
            let (res, buf) = match cancel {
                None => self.tcp.read(rbuf).await,
                Some(c) => self.tcp.cancelable_read(rbuf, c.clone()).await,
            };
            self.rbuf = buf;
            if res.map_err(Fill::Io)? == 0 {
                open = false;
                // tells rustls the transport ended (a missing close_notify is then an error)
                let _ = self.tls.read_tls(&mut &[][..]);
            }
        }
        self.feed().await?;
        Ok(open)
    }

    /// Hands buffered ciphertext to rustls and processes it; sends its alert on an error.
    async fn feed(&mut self) -> Result<(), Fill> {
        while self.rpos < self.rbuf.len() {
            let mut rd = self.rbuf.get(self.rpos..).unwrap_or_default();
            let n = match self.tls.read_tls(&mut rd) {
                Ok(n) => n,
                // rustls holds as much plaintext as it will take (it wants no more until that
                // is read): the caller reads it, then the rest is fed. Any other refusal (a
                // handshake message larger than rustls accepts) is fatal, never retried.
                Err(_) if !self.tls.wants_read() => break,
                Err(e) => return Err(Fill::Io(e)),
            };
            self.rpos += n;
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.flush().await;
                return Err(Fill::Tls(e));
            }
            if n == 0 {
                break;
            }
        }
        if self.rbuf.is_empty() && self.rpos == 0 {
            // nothing buffered: still run the state machine (EOF, queued records)
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.flush().await;
                return Err(Fill::Tls(e));
            }
        }
        Ok(())
    }

    /// Copies plaintext rustls holds into `buf`; `None` when it holds none.
    fn take_plaintext<T: IoBufMut>(&mut self, buf: &mut T) -> Option<io::Result<usize>> {
        let mut reader = self.tls.reader();
        match reader.fill_buf() {
            Ok([]) => Some(Ok(0)),
            Ok(data) => {
                let n = crate::sys::fill_buf(buf, data);
                reader.consume(n);
                Some(Ok(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Reads plaintext into `buf`; 0 at the end of the stream.
    pub async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_with(buf, None).await
    }

    /// `read` whose socket reads `cancel` can cancel without losing what they read: the
    /// cancelled read's ciphertext stays buffered for the next read.
    pub async fn read_cancelable<T: IoBufMut>(
        &mut self,
        buf: T,
        cancel: CancelHandle,
    ) -> BufResult<usize, T> {
        self.read_with(buf, Some(&cancel)).await
    }

    async fn read_with<T: IoBufMut>(
        &mut self,
        mut buf: T,
        cancel: Option<&CancelHandle>,
    ) -> BufResult<usize, T> {
        loop {
            if let Some(r) = self.take_plaintext(&mut buf) {
                return (r, buf);
            }
            match self.fill(cancel).await {
                Ok(_) => {}
                Err(Fill::Io(e)) => return (Err(e), buf),
                Err(Fill::Tls(e)) => return (Err(invalid(e)), buf),
            }
        }
    }

    /// Writes all of `buf` as plaintext.
    pub async fn write_all<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let data = crate::sys::buf_bytes(&buf);
        let mut done = 0;
        while done < data.len() {
            let n = match io::Write::write(
                &mut self.tls.writer(),
                data.get(done..).unwrap_or_default(),
            ) {
                Ok(n) => n,
                Err(e) => return (Err(e), buf),
            };
            done += n;
            if let Err(e) = self.flush().await {
                return (Err(e), buf);
            }
            if n == 0 {
                return (Err(io::Error::from(io::ErrorKind::WriteZero)), buf);
            }
        }
        (Ok(done), buf)
    }

    /// Ends the sending side: `Clean` sends close_notify first (given at most
    /// `CLOSE_NOTIFY_WAIT`, so a peer that stopped reading cannot hold the connection), `Abort`
    /// does not, so the peer sees a truncation, not an end.
    pub async fn shutdown(&mut self, how: Close) {
        if how == Close::Clean {
            self.tls.send_close_notify();
            let _ = monoio::time::timeout(CLOSE_NOTIFY_WAIT, self.flush()).await;
        }
        let _ = AsyncWriteRent::shutdown(&mut self.tcp).await;
    }

    /// Appends to `buf` the plaintext that has already arrived, without waiting: what rustls
    /// holds, then what the socket holds, decrypted. A record that carries no data (a session
    /// ticket, a key update) leaves `Nothing`.
    pub fn read_ready(&mut self, buf: &mut Vec<u8>) -> Ready {
        if let Some(r) = self.ready_plaintext(buf) {
            return r;
        }
        if self.rpos >= self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
            if self.rbuf.capacity() == 0 {
                self.rbuf.reserve(RECORD);
            }
            match crate::sys::recv_ready(std::os::fd::AsRawFd::as_raw_fd(&self.tcp), &mut self.rbuf)
            {
                Ready::Data(_) => {}
                Ready::Eof => {
                    let _ = self.tls.read_tls(&mut &[][..]);
                }
                other => return other,
            }
        }
        while self.rpos < self.rbuf.len() {
            let mut rd = self.rbuf.get(self.rpos..).unwrap_or_default();
            match self.tls.read_tls(&mut rd) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.rpos += n,
            }
            if self.tls.process_new_packets().is_err() {
                return Ready::Error;
            }
        }
        if self.tls.process_new_packets().is_err() {
            return Ready::Error;
        }
        self.ready_plaintext(buf).unwrap_or(Ready::Nothing)
    }

    fn ready_plaintext(&mut self, buf: &mut Vec<u8>) -> Option<Ready> {
        let mut reader = self.tls.reader();
        match reader.fill_buf() {
            Ok([]) => Some(Ready::Eof),
            Ok(data) => {
                let n = data.len().min(buf.capacity() - buf.len());
                buf.extend_from_slice(data.get(..n).unwrap_or_default());
                reader.consume(n);
                Some(Ready::Data(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(_) => Some(Ready::Error),
        }
    }
}

/// Why reading ciphertext failed.
enum Fill {
    Io(io::Error),
    Tls(rustls::Error),
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The peer closed the connection first.
    Closed,
    /// The socket failed.
    Io(io::Error),
    /// TLS itself failed (a bad message, no shared version or suite, a certificate).
    Tls(rustls::Error),
}
