//! `ktbroker-login-and-wait BROKER_URL CA_FILE USER CCACHE keytab|ticket`: logs in through
//! ktbroker-kinit's own library code (the password is the first line of stdin), prints `ready`,
//! and waits for stdin to close. For the memory residue tests, which scan this process's memory
//! while it waits. Test code only.

use ktbroker_kinit::fetch::{BrokerEndpoint, Delivery, Who};
use ktbroker_kinit::ticket::KerberosTarget;
use std::io::{BufRead, Read};
use zeroize::Zeroizing;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, ca_file, user, ccache, delivery] = args.as_slice() else {
        anyhow::bail!("usage: ktbroker-login-and-wait BROKER_URL CA_FILE USER CCACHE keytab|ticket");
    };
    let delivery = match delivery.as_str() {
        "ticket" => Delivery::Ticket,
        _ => Delivery::Keytab,
    };
    let request = ktbroker_kinit::LoginRequest {
        endpoints: vec![BrokerEndpoint {
            url: url.clone(),
            ca_pem: std::fs::read(ca_file)?,
            tls_server_name: None,
            client_identity: None,
            timeout: std::time::Duration::from_secs(15),
        }],
        who: Who {
            username: user.clone(),
            principal: None,
            tenant: None,
            delivery,
            sso: false,
        },
        kerberos: KerberosTarget {
            ccache: Some(ccache.clone()),
            ..KerberosTarget::default()
        },
    };
    let mut stdin = std::io::stdin().lock();
    let mut password = Zeroizing::new(String::new());
    stdin.read_line(&mut password)?;
    let password = Zeroizing::new(password.trim_end_matches('\n').as_bytes().to_vec());
    let outcome = ktbroker_kinit::request::run_async(ktbroker_kinit::login(&request, &password))?;
    drop(password);
    println!("ready {}", outcome.principal);
    let mut rest = Vec::new();
    let _ = stdin.read_to_end(&mut rest);
    Ok(())
}
