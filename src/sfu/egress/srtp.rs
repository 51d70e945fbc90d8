//! SRTP and SRTCP for what the worker sends itself: the session keys derived from the DTLS
//! handshake's keying material (RFC 5764 §4.2, RFC 3711 §4.3), RTP and RTCP protected with
//! AES-128-CM + HMAC-SHA1-80 (RFC 3711) or AEAD AES-GCM (RFC 7714), and the subscriber's
//! SRTCP checked and decrypted. Protection happens in place in the caller's buffer: no
//! allocation per packet. The ciphers are aws-lc-rs, the library str0m's own SRTP uses.
//!
//! This does not own which packets exist or when they go (that is [`super::Egress`]), nor the
//! SRTP of the publishers' incoming media, which str0m decrypts.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_256};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

/// The SRTP protection profiles DTLS can negotiate (str0m offers these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80`.
    Aes128CmSha1_80,
    /// `SRTP_AEAD_AES_128_GCM`.
    AeadAes128Gcm,
    /// `SRTP_AEAD_AES_256_GCM`.
    AeadAes256Gcm,
}

impl Profile {
    fn key_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 | Profile::AeadAes128Gcm => 16,
            Profile::AeadAes256Gcm => 32,
        }
    }

    fn salt_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => 14,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => 12,
        }
    }

    /// Bytes SRTP adds after an RTP packet (the authentication tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => HMAC_TAG_LEN,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }

    /// Bytes SRTCP adds after an RTCP packet (the tag and the E flag with the index).
    pub fn rtcp_overhead(self) -> usize {
        self.rtp_overhead() + SRTCP_INDEX_LEN
    }
}

const HMAC_TAG_LEN: usize = 10;
const GCM_TAG_LEN: usize = 16;
const SRTCP_INDEX_LEN: usize = 4;
/// The most any profile adds to an RTP packet.
pub const MAX_RTP_OVERHEAD: usize = GCM_TAG_LEN;
/// The most any profile adds to an RTCP packet.
pub const MAX_RTCP_OVERHEAD: usize = GCM_TAG_LEN + SRTCP_INDEX_LEN;

// Key derivation labels, RFC 3711 §4.3.2.
const LABEL_RTP_KEY: u8 = 0x00;
const LABEL_RTP_AUTH: u8 = 0x01;
const LABEL_RTP_SALT: u8 = 0x02;
const LABEL_RTCP_KEY: u8 = 0x03;
const LABEL_RTCP_AUTH: u8 = 0x04;
const LABEL_RTCP_SALT: u8 = 0x05;

/// Why SRTP keys could not be set up or a packet could not be protected or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// DTLS handed over keying material of the wrong size for its profile.
    #[error("keying material of {got} bytes; {profile:?} needs {want}")]
    MaterialLength {
        /// The negotiated profile.
        profile: Profile,
        /// Bytes received.
        got: usize,
        /// Bytes the profile needs.
        want: usize,
    },
    /// The packet is shorter than its headers and tag.
    #[error("packet too short for SRTCP")]
    TooShort,
    /// The buffer has no room for the tag.
    #[error("no room for the SRTP tag")]
    NoRoom,
    /// The authentication tag did not match (forged, corrupted, or other keys).
    #[error("SRTCP authentication failed")]
    Authentication,
    /// An SRTCP index seen before or too old for the replay window.
    #[error("SRTCP index {0} replayed or too old")]
    Replay(u32),
    /// A sender SSRC beyond [`MAX_RTCP_SSRCS`]: its replay window could not be kept.
    #[error("SRTCP from more than {MAX_RTCP_SSRCS} sender SSRCs")]
    TooManySsrcs,
    /// The crypto library refused a key or an operation.
    #[error("crypto backend failure")]
    Backend,
}

/// One direction's master key and salt.
#[derive(Clone)]
struct Master {
    key: Vec<u8>,
    salt: Vec<u8>,
}

/// The master keys of both directions of one DTLS-SRTP connection.
#[derive(Clone)]
pub struct Keys {
    profile: Profile,
    /// What this end protects with.
    local: Master,
    /// What the other end protects with.
    remote: Master,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key bytes.
        f.debug_struct("Keys")
            .field("profile", &self.profile)
            .finish()
    }
}

impl Keys {
    /// Splits DTLS's exported keying material (`client key | server key | client salt |
    /// server salt`) into this end's keys and the other's. `local_is_client`: this end was
    /// the DTLS client (the active side).
    pub fn from_dtls(
        profile: Profile,
        material: &[u8],
        local_is_client: bool,
    ) -> Result<Keys, SrtpError> {
        let (k, s) = (profile.key_len(), profile.salt_len());
        let want = 2 * (k + s);
        if material.len() != want {
            return Err(SrtpError::MaterialLength {
                profile,
                got: material.len(),
                want,
            });
        }
        let client = Master {
            key: material[..k].to_vec(),
            salt: material[2 * k..2 * k + s].to_vec(),
        };
        let server = Master {
            key: material[k..2 * k].to_vec(),
            salt: material[2 * k + s..].to_vec(),
        };
        let (local, remote) = if local_is_client {
            (client, server)
        } else {
            (server, client)
        };
        Ok(Keys {
            profile,
            local,
            remote,
        })
    }

    /// The negotiated profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The contexts that protect what this end sends.
    pub fn sender(&self) -> Result<Sender, SrtpError> {
        Ok(Sender {
            profile: self.profile,
            rtp: Session::derive(self.profile, &self.local, false)?,
            rtcp: Session::derive(self.profile, &self.local, true)?,
            srtcp_index: 0,
        })
    }

    /// The context that opens the other end's SRTP (see [`RtpReceiver`]).
    pub fn rtp_receiver(&self) -> Result<RtpReceiver, SrtpError> {
        Ok(RtpReceiver {
            profile: self.profile,
            rtp: Session::derive(self.profile, &self.remote, false)?,
        })
    }

    /// The context that opens the other end's SRTCP.
    pub fn rtcp_receiver(&self) -> Result<RtcpReceiver, SrtpError> {
        Ok(RtcpReceiver {
            profile: self.profile,
            rtcp: Session::derive(self.profile, &self.remote, true)?,
            replay: Vec::new(),
            scratch: Vec::new(),
        })
    }
}

/// The session keys of RTP or of RTCP in one direction.
enum Session {
    /// Boxed: the AES key schedule and the HMAC states are ~2 KB, which the GCM profiles
    /// browsers pick (a pointer to aws-lc's context) would otherwise carry too.
    CmSha1(Box<CmSha1>),
    Gcm {
        key: LessSafeKey,
        salt: [u8; 12],
    },
}

/// AES-128-CM with HMAC-SHA1-80 session keys.
struct CmSha1 {
    cipher: EncryptingKey,
    auth: hmac::Key,
    salt: [u8; 14],
}

impl CmSha1 {
    /// XORs the keystream of packet `index` of `ssrc` into `data`: encrypts or decrypts.
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) -> Result<(), SrtpError> {
        let iv = cm_iv(&self.salt, ssrc, index);
        self.cipher
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| SrtpError::Backend)?;
        Ok(())
    }

    /// The SRTP authentication tag of `packet` (header and encrypted payload) with rollover
    /// counter `roc` (RFC 3711 §4.2), truncated to [`HMAC_TAG_LEN`].
    fn rtp_tag(&self, packet: &[u8], roc: u32) -> [u8; HMAC_TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.auth);
        ctx.update(packet);
        ctx.update(&roc.to_be_bytes());
        let mut tag = [0u8; HMAC_TAG_LEN];
        tag.copy_from_slice(&ctx.sign().as_ref()[..HMAC_TAG_LEN]);
        tag
    }
}

impl Session {
    fn derive(profile: Profile, master: &Master, rtcp: bool) -> Result<Session, SrtpError> {
        let (l_key, l_auth, l_salt) = if rtcp {
            (LABEL_RTCP_KEY, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)
        } else {
            (LABEL_RTP_KEY, LABEL_RTP_AUTH, LABEL_RTP_SALT)
        };
        match profile {
            Profile::Aes128CmSha1_80 => {
                let mut key = [0u8; 16];
                let mut auth = [0u8; 20];
                let mut salt = [0u8; 14];
                kdf(master, l_key, &mut key)?;
                kdf(master, l_auth, &mut auth)?;
                kdf(master, l_salt, &mut salt)?;
                let cipher = UnboundCipherKey::new(&AES_128, &key)
                    .and_then(EncryptingKey::ctr)
                    .map_err(|_| SrtpError::Backend)?;
                Ok(Session::CmSha1(Box::new(CmSha1 {
                    cipher,
                    auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &auth),
                    salt,
                })))
            }
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => {
                let mut key = vec![0u8; profile.key_len()];
                let mut salt = [0u8; 12];
                kdf(master, l_key, &mut key)?;
                kdf(master, l_salt, &mut salt)?;
                let alg = if profile == Profile::AeadAes128Gcm {
                    &AES_128_GCM
                } else {
                    &AES_256_GCM
                };
                let key = UnboundKey::new(alg, &key).map_err(|_| SrtpError::Backend)?;
                Ok(Session::Gcm {
                    key: LessSafeKey::new(key),
                    salt,
                })
            }
        }
    }
}

/// RFC 3711 §4.3.3's AES-CM pseudo-random function with a key derivation rate of zero: the
/// key stream of AES-CTR under the master key, from the IV `(salt XOR label at byte 7) || 0`.
/// The 12-byte salts of the GCM profiles are placed the same way (RFC 7714 §11).
fn kdf(master: &Master, label: u8, out: &mut [u8]) -> Result<(), SrtpError> {
    let mut iv = [0u8; 16];
    iv[..master.salt.len()].copy_from_slice(&master.salt);
    iv[7] ^= label;
    let alg = if master.key.len() == 32 {
        &AES_256
    } else {
        &AES_128
    };
    let prf = UnboundCipherKey::new(alg, &master.key)
        .and_then(EncryptingKey::ctr)
        .map_err(|_| SrtpError::Backend)?;
    out.fill(0);
    prf.less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| SrtpError::Backend)?;
    Ok(())
}

/// The AES-CM IV of RFC 3711 §4.1.1: `salt << 16 XOR ssrc << 64 XOR index << 16`.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..8]) {
        *b ^= s;
    }
    iv
}

/// The GCM IV of RFC 7714 §8.1 (RTP: ROC and SEQ) and §9.1 (RTCP: the SRTCP index).
fn gcm_iv(salt: &[u8; 12], ssrc: u32, high: u32, low: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&high.to_be_bytes());
    iv[10..12].copy_from_slice(&low.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// Protects what one end sends: RTP with the sender's ROC per SSRC (which the caller knows:
/// its sequence numbers are extended), RTCP with one SRTCP index for all packets.
pub struct Sender {
    profile: Profile,
    rtp: Session,
    rtcp: Session,
    srtcp_index: u32,
}

impl Sender {
    /// The negotiated profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Starts the SRTCP index at `index` (mod 2^31) instead of 0: a second sender on the same
    /// keys must never reuse the (SSRC, index) pairs of the first.
    pub fn set_srtcp_index(&mut self, index: u32) {
        self.srtcp_index = index & 0x7fff_ffff;
    }

    /// Protects the RTP packet in `buf[..len]` whose header is `buf[..header_len]`, in place;
    /// `buf` needs [`Profile::rtp_overhead`] bytes of room after `len`. `index` is the
    /// packet's extended sequence number (ROC << 16 | SEQ). Returns the protected length.
    pub fn protect_rtp(
        &self,
        buf: &mut [u8],
        header_len: usize,
        len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        let out_len = len + self.profile.rtp_overhead();
        if buf.len() < out_len || header_len > len {
            return Err(SrtpError::NoRoom);
        }
        let roc = (index >> 16) as u32;
        match &self.rtp {
            Session::CmSha1(cm) => {
                cm.apply_keystream(ssrc, index & 0xffff_ffff_ffff, &mut buf[header_len..len])?;
                let tag = cm.rtp_tag(&buf[..len], roc);
                buf[len..out_len].copy_from_slice(&tag);
            }
            Session::Gcm { key, salt } => {
                let iv = gcm_iv(salt, ssrc, roc, index as u16);
                let (header, rest) = buf.split_at_mut(header_len);
                let body = &mut rest[..len - header_len];
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&*header),
                        body,
                    )
                    .map_err(|_| SrtpError::Backend)?;
                buf[len..out_len].copy_from_slice(tag.as_ref());
            }
        }
        Ok(out_len)
    }

    /// Protects the (compound) RTCP packet in `buf[..len]` in place; `buf` needs
    /// [`Profile::rtcp_overhead`] bytes of room after `len`. Returns the protected length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let out_len = len + self.profile.rtcp_overhead();
        if buf.len() < out_len {
            return Err(SrtpError::NoRoom);
        }
        if len < 8 {
            return Err(SrtpError::TooShort);
        }
        let index = self.srtcp_index;
        self.srtcp_index = (index + 1) & 0x7fff_ffff;
        let e_index = (0x8000_0000 | index).to_be_bytes();
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        match &self.rtcp {
            Session::CmSha1(cm) => {
                cm.apply_keystream(ssrc, index as u64, &mut buf[8..len])?;
                buf[len..len + 4].copy_from_slice(&e_index);
                let tag = hmac::sign(&cm.auth, &buf[..len + 4]);
                buf[len + 4..out_len].copy_from_slice(&tag.as_ref()[..HMAC_TAG_LEN]);
            }
            Session::Gcm { key, salt } => {
                let iv = gcm_iv(salt, ssrc, index >> 16, index as u16);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(aad),
                        &mut buf[8..len],
                    )
                    .map_err(|_| SrtpError::Backend)?;
                buf[len..len + GCM_TAG_LEN].copy_from_slice(tag.as_ref());
                buf[len + GCM_TAG_LEN..out_len].copy_from_slice(&e_index);
            }
        }
        Ok(out_len)
    }
}

#[cfg(test)]
impl Keys {
    /// The other end's view: a sender with the keys swapped, for tests that play the
    /// subscriber.
    pub fn peer(&self) -> Keys {
        Keys {
            profile: self.profile,
            local: self.remote.clone(),
            remote: self.local.clone(),
        }
    }

    /// Opens an SRTP packet protected with the other end's keys: the plain packet, or None
    /// when it does not authenticate. For tests that play the subscriber.
    pub fn open_rtp(&self, packet: &[u8], header_len: usize, index: u64) -> Option<Vec<u8>> {
        let mut copy = packet.to_vec();
        let receiver = self.rtp_receiver().ok()?;
        let plain = receiver
            .unprotect(&mut copy, header_len, index)
            .ok()?
            .to_vec();
        let mut out = packet[..header_len].to_vec();
        out.extend_from_slice(&plain);
        Some(out)
    }
}

/// SRTCP replay protection (RFC 3711 §3.3.2): the highest index seen and a bitmap of the
/// 64 below it.
#[derive(Debug, Default)]
struct ReplayWindow {
    top: Option<u32>,
    seen: u64,
}

impl ReplayWindow {
    fn check(&self, index: u32) -> Result<(), SrtpError> {
        let Some(top) = self.top else {
            return Ok(());
        };
        if index > top {
            return Ok(());
        }
        let back = top - index;
        if back >= 64 || self.seen & (1 << back) != 0 {
            return Err(SrtpError::Replay(index));
        }
        Ok(())
    }

    fn accept(&mut self, index: u32) {
        match self.top {
            Some(top) if index <= top => self.seen |= 1 << (top - index),
            Some(top) => {
                let shift = index - top;
                self.seen = if shift >= 64 { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.top = Some(index);
            }
            None => {
                self.top = Some(index);
                self.seen = 1;
            }
        }
    }
}

/// Most sender SSRCs whose SRTCP replay windows a receiver keeps. A browser sends RTCP from
/// one SSRC per receiving m-line (Firefox) or a few (Chromium); a meeting of hundreds of
/// streams stays below this.
pub const MAX_RTCP_SSRCS: usize = 1024;

/// Opens the other end's SRTCP: authenticates, checks the replay window, decrypts.
pub struct RtcpReceiver {
    profile: Profile,
    rtcp: Session,
    /// One replay window per sender SSRC: RFC 3711 numbers SRTCP packets per SSRC (§3.4), so
    /// one window for all would take a second SSRC's packets for replays of the first's.
    replay: Vec<(u32, ReplayWindow)>,
    /// The last packet opened (reused between packets).
    scratch: Vec<u8>,
}

impl RtcpReceiver {
    /// Refuses `index` from sender `ssrc` if its window has seen it or left it behind. An
    /// SSRC not seen before has no window yet: it is made when its first packet is accepted,
    /// after authentication, so forged packets cannot fill the table.
    fn check_replay(&self, ssrc: u32, index: u32) -> Result<(), SrtpError> {
        match self.replay.iter().find(|(s, _)| *s == ssrc) {
            Some((_, w)) => w.check(index),
            None if self.replay.len() >= MAX_RTCP_SSRCS => Err(SrtpError::TooManySsrcs),
            None => Ok(()),
        }
    }

    /// Records an authenticated `index` from sender `ssrc`.
    fn accept_replay(&mut self, ssrc: u32, index: u32) {
        match self.replay.iter_mut().find(|(s, _)| *s == ssrc) {
            Some((_, w)) => w.accept(index),
            None => {
                let mut w = ReplayWindow::default();
                w.accept(index);
                self.replay.push((ssrc, w));
            }
        }
    }

    /// The plain compound RTCP packet inside `packet`, or why it was refused.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<&[u8], SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        if packet.len() < 8 + overhead {
            return Err(SrtpError::TooShort);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        self.scratch.clear();
        let index;
        match &self.rtcp {
            Session::CmSha1(cm) => {
                let (signed, tag) = packet.split_at(packet.len() - HMAC_TAG_LEN);
                let expected = hmac::sign(&cm.auth, signed);
                if !constant_time_eq(&expected.as_ref()[..HMAC_TAG_LEN], tag) {
                    return Err(SrtpError::Authentication);
                }
                let (body, e_index) = signed.split_at(signed.len() - SRTCP_INDEX_LEN);
                let e_index = u32::from_be_bytes([e_index[0], e_index[1], e_index[2], e_index[3]]);
                index = e_index & 0x7fff_ffff;
                self.check_replay(ssrc, index)?;
                self.scratch.extend_from_slice(body);
                if e_index & 0x8000_0000 != 0 {
                    cm.apply_keystream(ssrc, index as u64, &mut self.scratch[8..])?;
                }
            }
            Session::Gcm { key, salt } => {
                let (sealed, e_index) = packet.split_at(packet.len() - SRTCP_INDEX_LEN);
                let e_index_bytes = [e_index[0], e_index[1], e_index[2], e_index[3]];
                let e_index = u32::from_be_bytes(e_index_bytes);
                index = e_index & 0x7fff_ffff;
                self.check_replay(ssrc, index)?;
                let iv = gcm_iv(salt, ssrc, index >> 16, index as u16);
                self.scratch.extend_from_slice(sealed);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&packet[..8]);
                aad[8..].copy_from_slice(&e_index_bytes);
                if e_index & 0x8000_0000 != 0 {
                    let opened = key
                        .open_in_place(
                            Nonce::assume_unique_for_key(iv),
                            Aad::from(aad),
                            &mut self.scratch[8..],
                        )
                        .map_err(|_| SrtpError::Authentication)?
                        .len();
                    self.scratch.truncate(8 + opened);
                } else {
                    // Not encrypted: the whole packet is authenticated data.
                    let (plain, tag) = sealed.split_at(sealed.len() - GCM_TAG_LEN);
                    let mut all = plain.to_vec();
                    all.extend_from_slice(&e_index_bytes);
                    let mut empty = [];
                    key.open_separate_gather(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(all),
                        &[],
                        tag,
                        &mut empty,
                    )
                    .map_err(|_| SrtpError::Authentication)?;
                    self.scratch.truncate(plain.len());
                }
            }
        }
        self.accept_replay(ssrc, index);
        Ok(&self.scratch)
    }
}

/// Opens the other end's SRTP packets, in place. No replay window: this is the receive side
/// of the load generator's light subscribers and of tests, not of the server (str0m opens
/// the publishers' media).
pub struct RtpReceiver {
    profile: Profile,
    rtp: Session,
}

impl RtpReceiver {
    /// The plain payload of the SRTP packet in `packet` (header of `header_len` bytes, `index`
    /// its extended sequence number), decrypted in place; or why it was refused.
    pub fn unprotect<'a>(
        &self,
        packet: &'a mut [u8],
        header_len: usize,
        index: u64,
    ) -> Result<&'a [u8], SrtpError> {
        let tag_len = self.profile.rtp_overhead();
        if packet.len() < header_len + tag_len {
            return Err(SrtpError::TooShort);
        }
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let roc = (index >> 16) as u32;
        match &self.rtp {
            Session::CmSha1(cm) => {
                let end = packet.len() - HMAC_TAG_LEN;
                if !constant_time_eq(&cm.rtp_tag(&packet[..end], roc), &packet[end..]) {
                    return Err(SrtpError::Authentication);
                }
                cm.apply_keystream(ssrc, index & 0xffff_ffff_ffff, &mut packet[header_len..end])?;
                Ok(&packet[header_len..end])
            }
            Session::Gcm { key, salt } => {
                let iv = gcm_iv(salt, ssrc, roc, index as u16);
                let (header, body) = packet.split_at_mut(header_len);
                let plain = key
                    .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(&*header), body)
                    .map_err(|_| SrtpError::Authentication)?;
                Ok(plain)
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.3: key derivation with AES-128-CM.
    #[test]
    fn key_derivation_matches_rfc_3711() {
        let master = Master {
            key: hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
            salt: hex("0EC675AD498AFEEBB6960B3AABE6"),
        };
        let mut key = [0u8; 16];
        kdf(&master, LABEL_RTP_KEY, &mut key).unwrap();
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut salt = [0u8; 14];
        kdf(&master, LABEL_RTP_SALT, &mut salt).unwrap();
        assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 94];
        kdf(&master, LABEL_RTP_AUTH, &mut auth).unwrap();
        assert_eq!(
            auth.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    /// libsrtp's reference packet (`srtp_validate` in its test driver): AES-128-CM with
    /// HMAC-SHA1-80 from the master key and salt of RFC 3711 B.3, SSRC 0xcafebabe, SEQ 0x1234.
    #[test]
    fn cm_sha1_rtp_matches_libsrtp() {
        let mut material = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        material.extend([0u8; 16]);
        material.extend(hex("0EC675AD498AFEEBB6960B3AABE6"));
        material.extend([0u8; 14]);
        let keys = Keys::from_dtls(Profile::Aes128CmSha1_80, &material, true).unwrap();
        let sender = keys.sender().unwrap();
        let mut plain = hex("800f1234decafbadcafebabe");
        plain.extend([0xab; 16]);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 10, 0);
        let n = sender
            .protect_rtp(&mut buf, 12, plain.len(), 0xcafebabe, 0x1234)
            .unwrap();
        assert_eq!(
            &buf[..n],
            &hex("800f1234decafbadcafebabe4e55dc4c e79978d88ca4d215949d2402
                 b78d6acc99ea179b8dbb")[..]
        );
    }

    /// The session keys of RFC 7714's examples (§16, §17): AEAD_AES_128_GCM, the same key
    /// and salt for RTP and RTCP.
    fn rfc_7714_sender() -> (Sender, RtcpReceiver) {
        let key = hex("000102030405060708090a0b0c0d0e0f");
        let salt: [u8; 12] = hex("517569642070726f2071756f")[..].try_into().unwrap();
        let session = || Session::Gcm {
            key: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap()),
            salt,
        };
        let sender = Sender {
            profile: Profile::AeadAes128Gcm,
            rtp: session(),
            rtcp: session(),
            srtcp_index: 0,
        };
        let receiver = RtcpReceiver {
            profile: Profile::AeadAes128Gcm,
            rtcp: session(),
            replay: Vec::new(),
            scratch: Vec::new(),
        };
        (sender, receiver)
    }

    /// RFC 7714 §16.1.1: an RTP packet (SSRC 0x5501a0b2, SEQ 0xf17b, ROC 0) protected.
    #[test]
    fn gcm_rtp_matches_rfc_7714() {
        let (sender, _) = rfc_7714_sender();
        let plain = hex(
            "8040f17b8041f8d35501a0b247616c6c 696120657374206f6d6e6973206469
             76697361 20696e207061727465732074726573",
        );
        let expected = hex(
            "8040f17b8041f8d35501a0b2f24de3a3 fb34de6cacba861c9d7e4bcabe633bd5
             0d294e6f42a5f47a51c7d19b36de3adf 8833899d7f27beb16a9152cf765ee439
             0cce",
        );
        let mut buf = plain.clone();
        buf.resize(plain.len() + 16, 0);
        let n = sender
            .protect_rtp(&mut buf, 12, plain.len(), 0x5501a0b2, 0xf17b)
            .unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }

    /// RFC 7714 §17.1: an RTCP packet protected with SRTCP index 0x5d4, and §17.2's
    /// authenticated-only packet opened.
    #[test]
    fn gcm_rtcp_matches_rfc_7714() {
        let (mut sender, mut receiver) = rfc_7714_sender();
        let plain = hex(
            "81c8000d4d6172734e5450314e545032 525450200000042a0000e9304c75
             6e61deadbeefdeadbeefdeadbeefdead beefdeadbeef",
        );
        let expected = hex(
            "81c8000d4d61727363e94885dcdab67c a727d7662f6b7e997ff5c0f76c06f32d
             c676a5f1730d6fda4ce09b4686303ded 0bb9275bc84aa45896cf4d2fc5abf872
             45d9eade800005d4",
        );
        sender.set_srtcp_index(0x5d4);
        let mut buf = plain.clone();
        buf.resize(plain.len() + MAX_RTCP_OVERHEAD, 0);
        let n = sender.protect_rtcp(&mut buf, plain.len()).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
        assert_eq!(receiver.unprotect(&expected).unwrap(), &plain[..]);

        let mut tagged = plain.clone();
        tagged.extend(hex("841dd9683dd78ec92ae58790125f62b3 000005d4"));
        let (_, mut receiver) = rfc_7714_sender();
        assert_eq!(receiver.unprotect(&tagged).unwrap(), &plain[..]);
    }

    /// A pair of ends built from one keying material: what one sends, the other opens.
    fn pair(profile: Profile) -> (Sender, RtcpReceiver) {
        let len = 2 * (profile.key_len() + profile.salt_len());
        let material: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
        let server = Keys::from_dtls(profile, &material, false).unwrap();
        let client = Keys::from_dtls(profile, &material, true).unwrap();
        (server.sender().unwrap(), client.rtcp_receiver().unwrap())
    }

    fn rtcp_packet() -> Vec<u8> {
        // A sender report with no report blocks: 28 bytes.
        let mut p = vec![0x80, 200, 0, 6, 0x11, 0x22, 0x33, 0x44];
        p.extend((0..20).map(|i| i as u8));
        p
    }

    #[test]
    fn rtcp_round_trips_with_every_profile() {
        for profile in [
            Profile::Aes128CmSha1_80,
            Profile::AeadAes128Gcm,
            Profile::AeadAes256Gcm,
        ] {
            let (mut tx, mut rx) = pair(profile);
            let plain = rtcp_packet();
            for _ in 0..3 {
                let mut buf = plain.clone();
                buf.resize(plain.len() + MAX_RTCP_OVERHEAD, 0);
                let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
                assert_eq!(n, plain.len() + profile.rtcp_overhead());
                assert_ne!(&buf[8..plain.len()], &plain[8..], "{profile:?} encrypts");
                let opened = rx.unprotect(&buf[..n]).unwrap();
                assert_eq!(opened, &plain[..], "{profile:?}");
            }
        }
    }

    #[test]
    fn a_replayed_or_forged_rtcp_packet_is_refused() {
        for profile in [Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm] {
            let (mut tx, mut rx) = pair(profile);
            let plain = rtcp_packet();
            let mut buf = plain.clone();
            buf.resize(plain.len() + MAX_RTCP_OVERHEAD, 0);
            let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
            let sealed = buf[..n].to_vec();
            let mut forged = sealed.clone();
            forged[10] ^= 1;
            assert_eq!(rx.unprotect(&forged), Err(SrtpError::Authentication));
            rx.unprotect(&sealed).unwrap();
            assert_eq!(rx.unprotect(&sealed), Err(SrtpError::Replay(0)));
            assert_eq!(rx.unprotect(&sealed[..10]), Err(SrtpError::TooShort));
        }
    }

    /// A browser sends RTCP from several SSRCs (Firefox: one per receiving m-line), each
    /// numbering its SRTCP packets from 0. Each SSRC has its own window: a second SSRC's
    /// packets are not replays of the first's (they were, and every PLI and NACK Firefox sent
    /// for its second and later streams was dropped).
    #[test]
    fn each_sender_ssrc_has_its_own_replay_window() {
        for profile in [Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm] {
            let len = 2 * (profile.key_len() + profile.salt_len());
            let material: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            let keys = Keys::from_dtls(profile, &material, false).unwrap();
            let mut rx = Keys::from_dtls(profile, &material, true)
                .unwrap()
                .rtcp_receiver()
                .unwrap();
            let mut senders: Vec<Sender> = (0..3).map(|_| keys.sender().unwrap()).collect();
            let seal = |tx: &mut Sender, ssrc: u32| {
                let mut plain = rtcp_packet();
                plain[4..8].copy_from_slice(&ssrc.to_be_bytes());
                let mut buf = plain.clone();
                buf.resize(plain.len() + MAX_RTCP_OVERHEAD, 0);
                let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
                buf.truncate(n);
                (plain, buf)
            };
            for round in 0..4 {
                for (i, tx) in senders.iter_mut().enumerate() {
                    let (plain, sealed) = seal(tx, 0x1000 + i as u32);
                    assert_eq!(
                        rx.unprotect(&sealed).map(<[u8]>::to_vec),
                        Ok(plain),
                        "{profile:?}: SSRC {i}'s packet {round}"
                    );
                    assert_eq!(
                        rx.unprotect(&sealed).map(<[u8]>::to_vec),
                        Err(SrtpError::Replay(round)),
                        "{profile:?}: the same packet again"
                    );
                }
            }
        }
    }

    #[test]
    fn a_receiver_keeps_windows_for_a_bounded_number_of_ssrcs() {
        let (mut tx, mut rx) = pair(Profile::AeadAes128Gcm);
        for ssrc in 0..MAX_RTCP_SSRCS as u32 {
            rx.accept_replay(ssrc, 0);
        }
        let mut plain = rtcp_packet();
        plain[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut buf = plain.clone();
        buf.resize(plain.len() + MAX_RTCP_OVERHEAD, 0);
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        assert_eq!(rx.unprotect(&buf[..n]), Err(SrtpError::TooManySsrcs));
        assert_eq!(rx.replay.len(), MAX_RTCP_SSRCS);
    }

    #[test]
    fn the_replay_window_takes_late_packets_once() {
        let mut w = ReplayWindow::default();
        for i in [5u32, 7, 6, 100, 40] {
            w.check(i).unwrap();
            w.accept(i);
        }
        assert_eq!(w.check(40), Err(SrtpError::Replay(40)));
        assert_eq!(w.check(36), Err(SrtpError::Replay(36)), "more than 63 back");
        w.check(41).unwrap();
        w.check(101).unwrap();
    }

    #[test]
    fn keying_material_of_the_wrong_size_is_refused() {
        assert_eq!(
            Keys::from_dtls(Profile::AeadAes128Gcm, &[0u8; 60], false).unwrap_err(),
            SrtpError::MaterialLength {
                profile: Profile::AeadAes128Gcm,
                got: 60,
                want: 56
            }
        );
    }
}
