//! Which pages are this site's: the WebSocket upgrade (`upgrade.rs`) and
//! the sign-in form (`signin/`) both refuse what another site's page sends.

/// `trunk serve`'s origin, allowed in development mode (`--dev`).
const DEV_ORIGINS: [&str; 2] = ["http://127.0.0.1:8081", "http://localhost:8081"];

/// The page's origin is this server's own (same host, http or https), the
/// development server's (in development mode), or one the operator allowed.
pub fn origin_allowed(origin: &str, host: Option<&str>, extra: &[String], dev: bool) -> bool {
    let own = host.is_some_and(|host| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    });
    own || (dev && DEV_ORIGINS.contains(&origin))
        || extra
            .iter()
            .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn the_dev_server_only_in_development_mode() {
        let none: &[String] = &[];
        let dev = "http://127.0.0.1:8081";
        assert!(!origin_allowed(dev, Some("127.0.0.1:8080"), none, false));
        assert!(origin_allowed(dev, Some("127.0.0.1:8080"), none, true));
    }

    #[test]
    fn only_our_own_and_listed_origins() {
        let none: &[String] = &[];
        assert!(origin_allowed(
            "http://chat.local:8080",
            Some("chat.local:8080"),
            none,
            false
        ));
        assert!(origin_allowed(
            "https://Chat.Example.com",
            Some("chat.example.com"),
            none,
            false
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("chat.example.com"),
            none,
            false
        ));
        assert!(!origin_allowed(
            "http://chat.local:8080.evil",
            Some("chat.local:8080"),
            none,
            false
        ));
        assert!(!origin_allowed("null", Some("chat.local"), none, false));
        let listed = ["https://chat.example.com/".to_owned()];
        assert!(origin_allowed(
            "https://chat.example.com",
            Some("10.0.0.5:8080"),
            &listed,
            false
        ));
        assert!(!origin_allowed(
            "https://other.example.com",
            Some("10.0.0.5:8080"),
            &listed,
            false
        ));
    }
}
