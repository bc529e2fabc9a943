//! The native Cairn client: finds the right tracker and storage node for
//! each operation, keeps authenticated connections in a pool, and retries
//! another member or tracker when one is down.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_client::Error> {
//! use cairn_client::{Body, Client, ClientConfig, UploadOptions};
//! let secret = cairn_proto::ClusterSecret::from_text("s3cret").unwrap();
//! let client = Client::new(ClientConfig::new(vec!["127.0.0.1:22300".into()], secret));
//! let id = client.upload(&UploadOptions::default(), Body::from(b"hello".to_vec())).await?;
//! let bytes = client.download_bytes(&id, 0, None).await?;
//! assert_eq!(bytes, b"hello");
//! # Ok(()) }
//! ```

mod blocks;
mod body;
mod client;
mod error;
mod meta;
mod routes;

pub use body::Body;
pub use client::{Client, ClientConfig, UploadOptions};
pub use error::{Error, Result, Role};
pub use meta::MetaClient;
