//! DTLS for the media transports with one shared configuration. str0m's aws-lc-rs backend
//! builds a fresh `dimpl::Config` for every connection, and building one validates the
//! crypto provider: a test key exchange and signature checks that cost more than the
//! handshake itself (`docs/benchmarks.md`, "Join cost"). [`SharedDtls`] is the same backend
//! (dimpl on aws-lc-rs, the same settings: no server cookie, ICE already proved the peer's
//! address) but builds the configuration once per MTU and hands every connection the same
//! `Arc`. It plugs in through str0m's public `DtlsProvider` trait: no patch of str0m.
//!
//! It also hands the worker the SRTP keys a handshake produced ([`KeySlot`]): the worker
//! encrypts what it sends to subscribers itself (`sfu::egress`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use str0m::config::{CryptoProvider, DtlsCert};
use str0m::crypto::dtls::{
    DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
};
use str0m::crypto::CryptoError;

use crate::sfu::egress::srtp::{Keys, Profile, SrtpError};

/// Where a connection's DTLS leaves the SRTP keys once its handshake has made them. The
/// worker that builds the connection keeps one end; the DTLS instance str0m creates inside
/// that build holds the other ([`capture_keys`]).
#[derive(Debug, Clone, Default)]
pub struct KeySlot(Arc<Mutex<Option<Result<Keys, SrtpError>>>>);

impl KeySlot {
    /// The keys, once the handshake has exported them.
    pub fn keys(&self) -> Option<Result<Keys, SrtpError>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn put(&self, keys: Result<Keys, SrtpError>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(keys);
    }
}

thread_local! {
    /// The slot of the connection being built on this thread (see [`capture_keys`]).
    static BUILDING: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

/// Runs `build` (which makes one DTLS instance of [`SharedDtls`]) so that the instance created inside it
/// reports its keys to the returned slot. str0m creates the instance synchronously in
/// `RtcConfig::build`, on the calling thread, as does `RecvConn::new` (`sfu::recv`).
pub fn capture_keys<R>(build: impl FnOnce() -> R) -> (R, KeySlot) {
    let slot = KeySlot::default();
    BUILDING.with(|b| *b.borrow_mut() = Some(slot.clone()));
    let built = build();
    BUILDING.with(|b| b.borrow_mut().take());
    (built, slot)
}

/// The DTLS provider of every media transport (see the module documentation).
#[derive(Debug, Default)]
pub struct SharedDtls {
    /// Built configurations, by MTU (`None`: dimpl's default).
    configs: Mutex<HashMap<Option<usize>, Arc<dimpl::Config>>>,
}

impl SharedDtls {
    /// The configuration for `mtu`, built at its first use.
    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = configs.get(&mtu) {
            return Ok(c.clone());
        }
        let mut builder = dimpl::Config::builder().use_server_cookie(false);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("dimpl config creation failed: {e}")))?,
        );
        configs.insert(mtu, config.clone());
        Ok(config)
    }

    /// How many configurations were built (one per MTU in use).
    pub fn configs_built(&self) -> usize {
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl DtlsProvider for SharedDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        dimpl::certificate::generate_self_signed_certificate()
            .ok()
            .map(|c| DtlsCert {
                certificate: c.certificate,
                private_key: c.private_key,
            })
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = self.config(mtu)?;
        let cert = dimpl::DtlsCertificate {
            certificate: cert.certificate.clone(),
            private_key: cert.private_key.clone(),
        };
        let dtls = match version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            other => {
                return Err(CryptoError::Other(format!(
                    "unsupported DTLS version: {other}"
                )))
            }
        };
        let slot = BUILDING.with(|b| b.borrow_mut().take());
        Ok(Box::new(Instance { dtls, slot }))
    }
}

/// The provider every worker's transports use.
pub fn shared() -> &'static SharedDtls {
    static SHARED: OnceLock<SharedDtls> = OnceLock::new();
    SHARED.get_or_init(SharedDtls::default)
}

/// str0m's aws-lc-rs crypto with [`SharedDtls`] for DTLS, for `RtcConfig::set_crypto_provider`.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                dtls_provider: shared(),
                ..str0m::crypto::from_feature_flags()
            })
        })
        .clone()
}

struct Instance {
    dtls: dimpl::Dtls,
    /// Where the SRTP keys go, for the worker's own sending; None: nobody asked.
    slot: Option<KeySlot>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedDtls instance")
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.dtls.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.dtls.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.dtls.poll_output(buf);
        if let (DtlsOutput::KeyingMaterial(material, profile), Some(slot)) = (&out, &self.slot) {
            let profile = match profile {
                dimpl::SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmSha1_80),
                dimpl::SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
                dimpl::SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
                _ => None,
            };
            if let Some(profile) = profile {
                slot.put(Keys::from_dtls(profile, material, self.dtls.is_active()));
            }
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.dtls.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.dtls.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.dtls.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.dtls.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.dtls.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.dtls.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.dtls.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers what `from` has to send to `to`; true when `from` reported the connection up.
    fn pump(
        from: &mut Box<dyn DtlsInstance>,
        to: &mut Box<dyn DtlsInstance>,
        buf: &mut [u8],
    ) -> bool {
        let mut connected = false;
        loop {
            match from.poll_output(buf) {
                DtlsOutput::Packet(p) => {
                    let p = p.to_vec();
                    to.handle_packet(&p).unwrap();
                }
                DtlsOutput::Connected => connected = true,
                DtlsOutput::Timeout(_) => return connected,
                _ => {}
            }
        }
    }

    /// Runs a handshake between two instances of one provider; true when both ends finish.
    fn handshake(provider: &SharedDtls) -> bool {
        handshake_capturing(provider).0
    }

    /// A handshake whose instances were made inside [`capture_keys`]: whether both ends
    /// finished, and the key slots of the active and the passive end.
    fn handshake_capturing(provider: &SharedDtls) -> (bool, KeySlot, KeySlot) {
        let now = Instant::now();
        let (a_cert, b_cert) = (
            provider.generate_certificate().expect("a certificate"),
            provider.generate_certificate().expect("a certificate"),
        );
        let (a, a_slot) =
            capture_keys(|| provider.new_dtls(&a_cert, now, DtlsVersion::Dtls12, Some(1150)));
        let (b, b_slot) =
            capture_keys(|| provider.new_dtls(&b_cert, now, DtlsVersion::Dtls12, Some(1150)));
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        a.set_active(true);
        b.set_active(false);
        let (mut a_done, mut b_done) = (false, false);
        let mut buf = vec![0u8; 2048];
        let mut t = now;
        for _ in 0..50 {
            t += std::time::Duration::from_millis(10);
            a.handle_timeout(t).unwrap();
            b.handle_timeout(t).unwrap();
            a_done |= pump(&mut a, &mut b, &mut buf);
            b_done |= pump(&mut b, &mut a, &mut buf);
            if a_done && b_done {
                // The last flight may carry the keys: one more round.
                pump(&mut a, &mut b, &mut buf);
                pump(&mut b, &mut a, &mut buf);
                return (true, a_slot, b_slot);
            }
        }
        (false, a_slot, b_slot)
    }

    #[test]
    fn a_handshake_hands_each_end_its_srtp_keys() {
        let provider = SharedDtls::default();
        let (done, client, server) = handshake_capturing(&provider);
        assert!(done);
        let client = client.keys().expect("the client's keys").unwrap();
        let server = server.keys().expect("the server's keys").unwrap();
        assert_eq!(client.profile(), server.profile());
        // What the server protects, the client opens: each end took its own half.
        let plain = [0x80u8, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7, 1, 2, 3, 4];
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + 16, 0);
        let n = server
            .sender()
            .unwrap()
            .protect_rtp(&mut buf, 12, plain.len(), 7, 1)
            .unwrap();
        assert_eq!(client.open_rtp(&buf[..n], 12, 1).unwrap(), plain.to_vec());
        // An instance made outside `capture_keys` reports to nobody.
        assert!(capture_keys(|| ()).1.keys().is_none());
    }

    #[test]
    fn connections_share_one_configuration_and_complete_handshakes() {
        let provider = SharedDtls::default();
        assert_eq!(provider.configs_built(), 0);
        assert!(handshake(&provider), "first pair connects");
        assert!(handshake(&provider), "second pair connects");
        assert_eq!(
            provider.configs_built(),
            1,
            "four connections, one configuration"
        );
        provider
            .new_dtls(
                &provider.generate_certificate().unwrap(),
                Instant::now(),
                DtlsVersion::Dtls12,
                None,
            )
            .unwrap();
        assert_eq!(
            provider.configs_built(),
            2,
            "another MTU, another configuration"
        );
    }
}
