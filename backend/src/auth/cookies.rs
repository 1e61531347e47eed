//! The cookies a browser signs in with (the JSON API uses none: its
//! clients send `Authorization: Bearer`). See `http/signin/` for how the
//! server's sign-in page and the app use them.

use axum::http::{HeaderMap, header};

/// Whether this browser is signed in here (see the module's comment).
pub const STATE_COOKIE: &str = "hearth";
/// A new session's token, on its way from `POST /signin` to the app.
pub const HANDOFF_COOKIE: &str = "hearth_handoff";
pub const HANDOFF_PATH: &str = "/api/session/handoff";
/// How long the app has to pick the session up after the redirect.
pub const HANDOFF_SECS: u32 = 60;
/// How long the `hearth` cookie is kept: 400 days, the most browsers keep.
pub const STATE_SECS: u32 = 400 * 24 * 3600;

/// A cookie's value, from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `Some(true)`: signed in here now; `Some(false)`: signed in here before;
/// `None`: never (or cookies are off).
pub fn signed_in(headers: &HeaderMap) -> Option<bool> {
    match cookie(headers, STATE_COOKIE)? {
        "in" => Some(true),
        _ => Some(false),
    }
}

/// Request headers made of these pairs, for the tests of what reads them.
#[cfg(test)]
pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, axum::http::HeaderValue::from_str(value).unwrap());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_cookie_is_read_among_others() {
        assert_eq!(signed_in(&headers(&[])), None);
        assert_eq!(
            signed_in(&headers(&[("cookie", "a=1; hearth=in")])),
            Some(true)
        );
        assert_eq!(
            signed_in(&headers(&[("cookie", "hearth=out")])),
            Some(false)
        );
        assert_eq!(
            signed_in(&headers(&[
                ("cookie", "hearth_handoff=x"),
                ("cookie", "hearthx=in")
            ])),
            None,
            "other cookies with the name as a prefix are not it"
        );
    }
}
