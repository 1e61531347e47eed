//! The sign-in, sign-up and guest forms as plain data: which field an
//! error belongs to, and the checks made before the account logic is asked
//! (which makes them again, with the same words). Pure, so it is tested
//! without a server.

use common::{ApiErrorCode, validate};

/// Which form is on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SignIn,
    SignUp,
    Guest,
}

impl Mode {
    /// As it is named in a link or a form (`?mode=signup`); anything else
    /// is the sign-in form.
    pub fn parse(name: Option<&str>) -> Mode {
        match name {
            Some("signup") => Mode::SignUp,
            Some("guest") => Mode::Guest,
            _ => Mode::SignIn,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SignIn => "signin",
            Mode::SignUp => "signup",
            Mode::Guest => "guest",
        }
    }
}

/// Where to go after signing in: the path the person asked for, if it is
/// a path on this site. Anything else (another site, `//evil.example`,
/// `/\evil.example`, a scheme) is the home page, so that a link to the
/// sign-in page can never send someone elsewhere with their session.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.len() <= 512
                && !path.chars().any(char::is_control)
                && path != "/signin" =>
        {
            path
        }
        _ => "/",
    }
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
    fn modes_round_trip_and_anything_else_is_sign_in() {
        for mode in [Mode::SignIn, Mode::SignUp, Mode::Guest] {
            assert_eq!(Mode::parse(Some(mode.as_str())), mode);
        }
        assert_eq!(Mode::parse(Some("admin")), Mode::SignIn);
        assert_eq!(Mode::parse(None), Mode::SignIn);
    }

    #[test]
    fn only_a_path_on_this_site_is_somewhere_to_go_next() {
        assert_eq!(safe_next(Some("/rooms/general")), "/rooms/general");
        assert_eq!(safe_next(Some("/")), "/");
        for elsewhere in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/rooms/a\r\nSet-Cookie: x=1",
            "/signin",
            "",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), "/", "{elsewhere:?}");
        }
        assert_eq!(safe_next(None), "/");
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
