//! The mutual-TLS gRPC connection to the tower's admin API (ADMIN_RPC.md "Transport and auth").
//!
//! The tower is trusted through `<datadir>/ca.pem` and verified under the name `localhost` (a SAN of
//! every server certificate teosd and rust-teos issue, whatever address is dialled); teos-cli
//! presents `<datadir>/client.pem` with `client-key.pem`.

use std::path::Path;
use std::time::Duration;

use teos_common::protos::teos::v2::private_tower_services_client::PrivateTowerServicesClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::{CliError, chain};
use crate::settings::Settings;

/// The admin client over its TLS channel.
pub type AdminClient = PrivateTowerServicesClient<Channel>;

/// Bound on establishing the TCP + TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest response accepted, in bytes (a tower without paging returns its whole database at once).
const MAX_RESPONSE: usize = 1 << 30;
/// The name the server certificate is checked against.
const SERVER_NAME: &str = "localhost";

/// Advice shown when the connection fails.
pub const CONNECT_HINT: &str = "; is teosd running there, and are ca.pem, client.pem and \
client-key.pem in the data directory those of this tower?";

/// Reads the TLS files from `settings.data_dir` and connects.
///
/// Errors: [`CliError::Setup`] (a TLS file is missing or unreadable), [`CliError::CannotConnect`].
pub async fn connect(settings: &Settings) -> Result<AdminClient, CliError> {
    let dir = &settings.data_dir;
    let tls = ClientTlsConfig::new()
        .domain_name(SERVER_NAME)
        .ca_certificate(Certificate::from_pem(read(dir, "ca.pem")?))
        .identity(Identity::from_pem(
            read(dir, "client.pem")?,
            read(dir, "client-key.pem")?,
        ));
    let url = settings.url();
    let cannot_connect = |e: &dyn std::error::Error| CliError::CannotConnect {
        url: url.clone(),
        reason: chain(e),
        hint: CONNECT_HINT,
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| cannot_connect(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .tls_config(tls)
        .map_err(|e| cannot_connect(&e))?;
    let channel = endpoint.connect().await.map_err(|e| cannot_connect(&e))?;
    Ok(PrivateTowerServicesClient::new(channel).max_decoding_message_size(MAX_RESPONSE))
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, CliError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| CliError::Setup {
        reason: format!(
            "{e} (teosd writes {name} into its data directory on first start; to administer \
             a remote tower copy ca.pem, client.pem and client-key.pem here)"
        ),
        path,
    })
}
