//! Names and ids as they arrive in a path or a message: the errors that refuse them.

use super::error::ApiError;
use longrun_types::Project;

/// A name or project id refused: `TOO_LONG` past its limit, else `INVALID_NAME`.
pub fn invalid_name(e: longrun_types::NameError) -> ApiError {
    match e {
        longrun_types::NameError::TooLong(too_long) => too_long.into(),
        longrun_types::NameError::Invalid(why) => ApiError::invalid("INVALID_NAME", why),
    }
}

/// The project a path segment names (`PROJECT` of `projects/PROJECT/...`).
pub fn project_of(segment: &str) -> Result<Project, ApiError> {
    Project::parse(segment).map_err(invalid_name)
}

/// The operation a body field names (`parent`): `TOO_LONG` past its limit, else
/// `INVALID_NAME` naming the field.
pub fn operation_name(field: &str, text: &str) -> Result<longrun_types::Name, ApiError> {
    longrun_types::Name::parse(text).map_err(|e| match e {
        longrun_types::NameError::TooLong(too_long) => too_long.of(field).into(),
        longrun_types::NameError::Invalid(why) => {
            ApiError::invalid("INVALID_NAME", format!("{field}: {why}"))
        }
    })
}
