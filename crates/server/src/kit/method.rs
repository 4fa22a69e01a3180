//! The method table's types: one REST method as the discovery document describes it
//! (the table itself is `rest::discovery::METHODS`, with the emulator's and projects'
//! entries beside it).

/// One REST method as discovery describes it.
pub struct Method {
    /// Resources from the root: `["projects", "operations"]`.
    pub resource: &'static [&'static str],
    pub name: &'static str,
    pub http: &'static str,
    /// The path after `{version}/`, in URI-template form: `{+name}:cancel`.
    pub path: &'static str,
    /// The path parameter and the pattern its value must match; `("", "")` for a path
    /// with none (`projectRegistrations`).
    pub param: (&'static str, &'static str),
    /// Query parameters: (name, discovery type, format).
    pub query: &'static [(&'static str, &'static str, Option<&'static str>)],
    pub request: Option<&'static str>,
    pub response: &'static str,
    pub description: &'static str,
    /// A concrete path (after `{version}/`) that this method serves; tests route it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub example: &'static str,
}
