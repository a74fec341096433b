//! Authentication building blocks: password hashing ([`password`]) and login tokens
//! ([`token`]). Account rules (who may log in) live in [`crate::accounts`].

pub mod password;
pub mod token;

pub use password::Passwords;
pub use token::{Claims, Tokens};
