//! Where a webhook may POST: not into the server's own network.
//!
//! A webhook's URL is chosen by whoever runs `hearth admin`, but the
//! server is what connects, from inside the deployment: a URL naming a
//! loopback, private or link-local address (the cloud metadata service at
//! 169.254.169.254) would let it reach what is not meant to be reached
//! (SSRF). So addresses are checked where they are connected to: a literal
//! address before the request, and a name's addresses by the resolver the
//! HTTP client uses (`Guarded`), so that a name which resolves to a public
//! address when created and to 127.0.0.1 later (DNS rebinding) is refused
//! too. Redirects are not followed and proxies from the environment are
//! not used, for the same reason. `--webhook-allow-private` lifts this for
//! receivers inside the deployment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A webhook's URL, if it is one: http or https, with a host, and without
/// a user or password (the secret signs; credentials in URLs leak).
pub fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{}: only http and https", url.scheme()));
    }
    if url.host().is_none() {
        return Err("the URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("no user or password in the URL: the signature says who sends".into());
    }
    Ok(url)
}

/// Why a connection to this URL's host is refused before resolving it: a
/// literal address (or `localhost`) that is not public.
pub fn refuse_host(url: &reqwest::Url) -> Option<String> {
    match url.host()? {
        url::Host::Ipv4(ip) => refused(IpAddr::V4(ip)).map(|why| format!("{ip} is {why}")),
        url::Host::Ipv6(ip) => refused(IpAddr::V6(ip)).map(|why| format!("{ip} is {why}")),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost"))
                .then(|| format!("{name} is a loopback name"))
        }
    }
}

/// What kind of address this is, if a webhook may not connect to it.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refused_v4(ip),
        IpAddr::V6(ip) => refused_v6(ip),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private address",
        _ if ip.is_link_local() => "a link-local address",
        (0, _, _) => "an unspecified address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol address",
        (198, 18..=19, _) => "a benchmarking address",
        _ if ip.is_multicast() => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // An IPv4 address inside (mapped `::ffff:a.b.c.d`, or NAT64's
    // `64:ff9b::/96`) is what would be connected to.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return refused_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    Some(match segments[0] {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        0xfc00..=0xfdff => "a private (unique local) address",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xff00..=0xffff => "a multicast address",
        _ => return None,
    })
}

/// The HTTP client's resolver: the system's, without the addresses a
/// webhook may not reach. A name with none left fails to resolve, with the
/// reason.
pub struct Guarded;

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut why = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match refused(addr.ip()) {
                    Some(reason) => {
                        why.get_or_insert(format!("{host} resolves to {}, {reason}", addr.ip()));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = why.unwrap_or_else(|| format!("{host} has no address"));
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<String> {
        refuse_host(&parse_url(text).unwrap())
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert!(parse_url("https://hooks.example.com/in?x=1").is_ok());
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("https://user:pw@example.com/").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn private_loopback_and_metadata_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1.2.3:8080/",
            "http://10.0.0.5/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.1.1.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://localhost:9000/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(check(url).is_some(), "{url} should be refused");
        }
        assert_eq!(
            check("http://169.254.169.254/").unwrap(),
            "169.254.169.254 is a link-local address"
        );
    }

    #[test]
    fn public_addresses_and_names_pass_before_resolving() {
        for url in [
            "https://93.184.215.14/",
            "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
            "https://[64:ff9b::5db8:d70e]/",
            "https://hooks.example.com/",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
        ] {
            assert_eq!(check(url), None, "{url}");
        }
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused_by_the_resolver() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match Guarded.resolve(name).await {
            Ok(_) => panic!("localhost resolved"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains("loopback"), "{err}");
    }
}
