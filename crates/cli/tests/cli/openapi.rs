//! `GET /openapi.json` checked by tools not written here (tests/python/openapi_check.py):
//! openapi-spec-validator, and schemathesis's generated requests with every answer checked
//! against the document. Needs `LONGRUN_TEST_PYTHON` (set by .ci/run); without it the test
//! says so and skips.

use longrun_testkit::process::Server;
use longrun_testkit::python::Python;

#[test]
fn the_openapi_document_is_valid_and_the_answers_conform() {
    let Some(python) = Python::from_env("openapi_check.py") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    python.run_ok("openapi_check.py", &[&server.base]);
}
