//! Form messages. (The sign-in form itself is the server's page:
//! `backend/src/http/signin/`.)

/// Server and rule messages start lowercase; on their own line, capitalized.
/// (They are English: ASCII case rules are enough, and keep the bundle
/// free of Unicode's case tables.)
pub fn capitalized(text: &str) -> String {
    let mut text = text.to_owned();
    if let Some(first) = text.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    text
}
