//! Session-ticket keys every shard shares, so a client resumes on whichever shard its next
//! connection lands: one secret made at start, read-only; the key of each rotation period is
//! derived from it (HKDF-SHA256), so rotating needs no message and no lock. A ticket sealed
//! in one period opens in that period and the next. Keys are also bound to a listener's
//! scope (which listener, whom it trusts): a session resumes only where it could have been
//! made, so a ticket from a listener without mTLS never opens one that requires it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// The secret every shard's ticket keys derive from, made once per process.
pub struct TicketSecret([u8; 32]);

impl TicketSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Arc<TicketSecret>, String> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| "no randomness for the session-ticket secret".to_string())?;
        Ok(Arc::new(TicketSecret(secret)))
    }
}

impl std::fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketSecret(..)")
    }
}

/// The shared secret, a listener's scope and its rotation period.
#[derive(Debug)]
pub struct TicketKeys {
    secret: Arc<TicketSecret>,
    /// SHA-256 of what the listener's sessions stand for (see `tls::listener`).
    scope: [u8; 32],
    /// Seconds per key.
    period: u64,
}

impl TicketKeys {
    /// Keys from `secret` for the listener `scope` that change every `period_secs` (at least
    /// 60).
    pub fn new(secret: Arc<TicketSecret>, scope: [u8; 32], period_secs: u64) -> TicketKeys {
        TicketKeys {
            secret,
            scope,
            period: period_secs.max(60),
        }
    }

    /// The key of period `epoch`.
    fn key(&self, epoch: u64) -> Option<LessSafeKey> {
        let prk = Salt::new(HKDF_SHA256, b"shardgate session tickets").extract(&self.secret.0);
        let epoch = epoch.to_be_bytes();
        let info = [&self.scope[..], &epoch[..]];
        let okm = prk.expand(&info, &AES_256_GCM).ok()?;
        let mut bytes = [0u8; 32];
        okm.fill(&mut bytes).ok()?;
        UnboundKey::new(&AES_256_GCM, &bytes)
            .ok()
            .map(LessSafeKey::new)
    }

    fn epoch_at(&self, now: SystemTime) -> u64 {
        now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / self.period
    }

    /// Seals `plain` with the key of the period `now` falls in: `epoch ‖ nonce ‖ sealed`.
    pub fn seal(&self, plain: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let epoch = self.epoch_at(now);
        let key = self.key(epoch)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(8 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(epoch.to_be_bytes()),
            &mut sealed,
        )
        .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// Opens a ticket sealed in the period `now` falls in or the one before.
    pub fn open(&self, ticket: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let (epoch, rest) = ticket.split_first_chunk::<8>()?;
        let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>()?;
        let epoch = u64::from_be_bytes(*epoch);
        let current = self.epoch_at(now);
        if epoch != current && epoch.checked_add(1) != Some(current) {
            return None;
        }
        let key = self.key(epoch)?;
        let mut buf = sealed.to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(epoch.to_be_bytes()),
                &mut buf,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The `ProducesTickets` rustls calls on each shard (the keys are the shared ones).
#[derive(Debug)]
pub struct Ticketer(pub TicketKeys);

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.0.period).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.seal(plain, SystemTime::now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.open(cipher, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ticket_opens_in_its_period_and_the_next_only_and_in_its_scope() -> Result<(), String> {
        let secret = TicketSecret::generate()?;
        let keys = TicketKeys::new(secret.clone(), [1; 32], 3600);
        let t0 = UNIX_EPOCH + Duration::from_secs(3600 * 1000 + 10);
        let ticket = keys.seal(b"session state", t0).ok_or("seal")?;
        assert_eq!(
            keys.open(&ticket, t0).as_deref(),
            Some(&b"session state"[..])
        );
        let next = t0 + Duration::from_secs(3600);
        assert_eq!(
            keys.open(&ticket, next).as_deref(),
            Some(&b"session state"[..])
        );
        assert_eq!(keys.open(&ticket, next + Duration::from_secs(3600)), None);
        assert_eq!(keys.open(&ticket, t0 - Duration::from_secs(3600)), None);
        // tampered, truncated, another gateway's
        let mut bad = ticket.clone();
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
        assert_eq!(keys.open(&bad, t0), None);
        assert_eq!(keys.open(&ticket[..10], t0), None);
        let other = TicketKeys::new(TicketSecret::generate()?, [1; 32], 3600);
        assert_eq!(other.open(&ticket, t0), None);
        // the same gateway, another listener (or other trust)
        let elsewhere = TicketKeys::new(secret, [2; 32], 3600);
        assert_eq!(elsewhere.open(&ticket, t0), None);
        Ok(())
    }
}
