//! The handshake that opens every connection.
//!
//! Both sides prove they hold the cluster secret without sending it: each
//! sends a random nonce and answers with an HMAC-SHA256 over both nonces and
//! its role. The server proves itself first, so a client talking to a
//! stranger learns it before it sends anything of its own.

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::error::{ProtoError, Result};
use crate::frame::{expect_frame, write_frame};
use crate::PROTOCOL_VERSION;

const MAGIC: [u8; 4] = *b"CRN1";

/// The shared secret of a cluster.
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// Makes a secret from its text form (surrounding whitespace ignored).
    /// An empty secret is refused: it would let anyone in.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("the cluster secret is empty".into());
        }
        Ok(Self(t.as_bytes().to_vec()))
    }

    /// A new random secret in text form (64 hex digits).
    pub fn generate_text() -> String {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn proof(&self, role: &[u8], client_nonce: &[u8; 16], server_nonce: &[u8; 16]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(role);
        mac.update(client_nonce);
        mac.update(server_nonce);
        mac.finalize().into_bytes().into()
    }

    fn verify(&self, role: &[u8], client_nonce: &[u8; 16], server_nonce: &[u8; 16], proof: &[u8; 32]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(role);
        mac.update(client_nonce);
        mac.update(server_nonce);
        mac.verify_slice(proof).is_ok()
    }
}

#[derive(Serialize, Deserialize)]
struct ClientHello {
    magic: [u8; 4],
    version: u16,
    nonce: [u8; 16],
}

#[derive(Serialize, Deserialize)]
struct ServerChallenge {
    version: u16,
    nonce: [u8; 16],
    proof: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct ClientProof {
    proof: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct AuthResult {
    ok: bool,
    message: String,
}

/// The two ends of the handshake.
pub struct Handshake;

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

impl Handshake {
    /// Runs the client side. Fails with [`ProtoError::WrongSecret`] when the
    /// server does not hold the same secret or refuses ours.
    pub async fn client<S>(stream: &mut S, secret: &ClusterSecret) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        let cn = nonce();
        write_frame(stream, &ClientHello { magic: MAGIC, version: PROTOCOL_VERSION, nonce: cn }).await?;
        stream.flush().await?;
        // A Cairn daemon always answers the hello; one that hangs up at
        // once speaks something else (FastDFS drops a header it cannot parse).
        let ch: ServerChallenge = match crate::frame::read_frame(stream).await? {
            Some(ch) => ch,
            None => {
                return Err(ProtoError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection instead of answering the handshake (is it a Cairn port?)",
                )))
            }
        };
        if ch.version != PROTOCOL_VERSION {
            return Err(ProtoError::Auth(format!(
                "peer speaks protocol version {}, this build speaks {}",
                ch.version, PROTOCOL_VERSION
            )));
        }
        if !secret.verify(b"server", &cn, &ch.nonce, &ch.proof) {
            return Err(ProtoError::WrongSecret("it holds a different cluster secret".into()));
        }
        let proof = secret.proof(b"client", &cn, &ch.nonce);
        write_frame(stream, &ClientProof { proof }).await?;
        stream.flush().await?;
        let res: AuthResult = expect_frame(stream).await?;
        if !res.ok {
            return Err(ProtoError::WrongSecret(res.message));
        }
        Ok(())
    }

    /// Runs the server side. On failure the caller closes the connection.
    pub async fn server<S>(stream: &mut S, secret: &ClusterSecret) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        let hello: ClientHello = expect_frame(stream).await?;
        if hello.magic != MAGIC {
            return Err(ProtoError::Auth("not a Cairn client".into()));
        }
        let sn = nonce();
        let proof = secret.proof(b"server", &hello.nonce, &sn);
        write_frame(stream, &ServerChallenge { version: PROTOCOL_VERSION, nonce: sn, proof }).await?;
        stream.flush().await?;
        if hello.version != PROTOCOL_VERSION {
            return Err(ProtoError::Auth(format!("client speaks protocol version {}", hello.version)));
        }
        let cp: ClientProof = expect_frame(stream).await?;
        let ok = secret.verify(b"client", &hello.nonce, &sn, &cp.proof);
        let message = if ok { String::new() } else { "refused: wrong cluster secret".to_string() };
        write_frame(stream, &AuthResult { ok, message }).await?;
        stream.flush().await?;
        if ok {
            Ok(())
        } else {
            Err(ProtoError::WrongSecret("client presented a wrong cluster secret".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(server_secret: &str, client_secret: &str) -> (Result<()>, Result<()>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let s = ClusterSecret::from_text(server_secret).unwrap();
        let c = ClusterSecret::from_text(client_secret).unwrap();
        let server = tokio::spawn(async move { Handshake::server(&mut a, &s).await });
        let client = Handshake::client(&mut b, &c).await;
        drop(b);
        (server.await.unwrap(), client)
    }

    #[tokio::test]
    async fn same_secret_passes() {
        let (s, c) = pair("sekrit", "sekrit").await;
        assert!(s.is_ok() && c.is_ok());
    }

    #[tokio::test]
    async fn wrong_secret_is_refused_on_both_sides() {
        let (s, c) = pair("sekrit", "other").await;
        assert!(s.is_err());
        assert!(matches!(c, Err(ProtoError::WrongSecret(_))));
    }

    #[test]
    fn empty_secret_is_refused() {
        assert!(ClusterSecret::from_text("  \n").is_err());
    }
}
