//! The sign-in and sign-up forms as plain data: which field an error
//! belongs to, and the checks the page can make before asking the server
//! (the server makes them again; these only answer faster). Pure, so it is
//! tested natively.

use common::{ApiErrorCode, validate};

/// Which form is on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SignIn,
    SignUp,
    Guest,
}

/// Where an error is shown: under its field, or for the whole form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Username,
    DisplayName,
    Password,
    Form,
}

/// The field a server error code is about (none: the whole form).
pub fn field_for(code: Option<ApiErrorCode>) -> Field {
    match code {
        Some(ApiErrorCode::InvalidUsername | ApiErrorCode::UsernameTaken) => Field::Username,
        Some(ApiErrorCode::InvalidName) => Field::DisplayName,
        Some(ApiErrorCode::WeakPassword) => Field::Password,
        _ => Field::Form,
    }
}

/// What is wrong with the form as typed, before it is sent; empty if it
/// may be sent.
pub fn check(
    mode: Mode,
    username: &str,
    display_name: &str,
    password: &str,
) -> Vec<(Field, &'static str)> {
    let mut problems = Vec::new();
    match mode {
        Mode::SignIn => {
            if username.trim().is_empty() {
                problems.push((Field::Username, "enter your username"));
            }
            if password.is_empty() {
                problems.push((Field::Password, "enter your password"));
            }
        }
        Mode::SignUp => {
            if let Err(why) = validate::username(&validate::canonical_username(username)) {
                problems.push((Field::Username, why));
            }
            if let Err(why) = validate::display_name(display_name) {
                problems.push((Field::DisplayName, why));
            }
            if let Err(why) = validate::password_length(password) {
                problems.push((Field::Password, why));
            }
        }
        Mode::Guest => {
            if let Err(why) = validate::display_name(display_name) {
                problems.push((Field::DisplayName, why));
            }
        }
    }
    problems
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_land_under_their_field() {
        assert_eq!(
            field_for(Some(ApiErrorCode::UsernameTaken)),
            Field::Username
        );
        assert_eq!(
            field_for(Some(ApiErrorCode::InvalidName)),
            Field::DisplayName
        );
        assert_eq!(field_for(Some(ApiErrorCode::WeakPassword)), Field::Password);
        assert_eq!(field_for(Some(ApiErrorCode::BadCredentials)), Field::Form);
        assert_eq!(field_for(Some(ApiErrorCode::RateLimited)), Field::Form);
        assert_eq!(field_for(None), Field::Form, "no answer");
    }

    #[test]
    fn each_mode_checks_its_own_fields() {
        assert!(check(Mode::SignIn, "alice", "", "x").is_empty());
        assert_eq!(
            check(Mode::SignIn, " ", "", ""),
            [
                (Field::Username, "enter your username"),
                (Field::Password, "enter your password")
            ]
        );
        let problems = check(Mode::SignUp, "a b", "al\u{200B}ice", "short");
        let fields: Vec<Field> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [Field::Username, Field::DisplayName, Field::Password]
        );
        assert!(check(Mode::SignUp, "Alice", "Alice L.", "long enough pass").is_empty());
        assert!(check(Mode::Guest, "", "Drifter", "").is_empty());
        assert_eq!(check(Mode::Guest, "", "", "")[0].0, Field::DisplayName);
    }
}
