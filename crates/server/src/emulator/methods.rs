//! The Earth Engine methods the official client can call besides the operations methods,
//! as discovery entries (so that the client's call reaches the server at all), and the
//! routing of the ones longrun does not emulate: they answer at once 400
//! `FAILED_PRECONDITION` with ErrorInfo reason `NOT_EMULATED` naming the method
//! (docs/earth-engine.md#methods-not-emulated). Never 5xx: the client retries those for about 20 s.
//!
//! The list follows what `earthengine-api` calls (`ee/data.py`: computations, maps,
//! thumbnails, downloads, asset pixels and features, IAM writes), and what its discovery
//! document offers beside them: `projects.assets.search`, which no client library wraps
//! and whose `query` Earth Engine does not document, is answered `NOT_EMULATED` rather than
//! emulated by a guess (a test that passed on a made-up query language would say nothing
//! about Earth Engine); `listAssets` lists what the registry holds.

use crate::kit::error::ApiError;
use crate::kit::method::Method;
use longrun_types::Code;

const PROJECT: &str = "^projects/[^/]+$";
const ASSET: &str = "^projects/[^/]+/assets/.+$";

/// A POST on the project (`{+project}/RESOURCE:VERB`).
const fn on_project(
    resource: &'static [&'static str],
    name: &'static str,
    path: &'static str,
    example: &'static str,
    description: &'static str,
) -> Method {
    Method {
        resource,
        name,
        http: "POST",
        path,
        param: ("project", PROJECT),
        query: &[],
        request: Some("Any"),
        response: "Any",
        description,
        example,
    }
}

/// A method of a named resource (`{+name}:VERB` or `{+parent}/COLLECTION`).
#[allow(clippy::too_many_arguments)]
const fn named(
    resource: &'static [&'static str],
    name: &'static str,
    http: &'static str,
    path: &'static str,
    param: (&'static str, &'static str),
    query: &'static [(&'static str, &'static str, Option<&'static str>)],
    example: &'static str,
    description: &'static str,
) -> Method {
    Method {
        resource,
        name,
        http,
        path,
        param,
        query,
        request: if matches!(http.as_bytes(), b"GET" | b"DELETE") {
            None
        } else {
            Some("Any")
        },
        response: "Any",
        description,
        example,
    }
}

const COMPUTE: &str = "Not emulated: longrun computes nothing (400 NOT_EMULATED).";
const LIST: &[(&str, &str, Option<&str>)] = &[
    ("pageSize", "integer", Some("int32")),
    ("pageToken", "string", None),
    ("filter", "string", None),
    ("view", "string", None),
];
const FEATURES: &[(&str, &str, Option<&str>)] = &[
    ("pageSize", "integer", Some("int32")),
    ("pageToken", "string", None),
    ("filter", "string", None),
    ("region", "string", None),
];
const IMAGES: &[(&str, &str, Option<&str>)] = &[
    ("pageSize", "integer", Some("int32")),
    ("pageToken", "string", None),
    ("filter", "string", None),
    ("region", "string", None),
    ("startTime", "string", Some("google-datetime")),
    ("endTime", "string", Some("google-datetime")),
    ("view", "string", None),
];
const CREATE: &[(&str, &str, Option<&str>)] =
    &[("assetId", "string", None), ("overwrite", "boolean", None)];

/// The emulated asset methods (docs/earth-engine.md#assets).
pub const ASSETS: &[Method] = &[
    named(
        &["projects"],
        "listAssets",
        "GET",
        "{+parent}:listAssets",
        ("parent", PROJECT),
        LIST,
        "projects/p:listAssets",
        "Lists the project's top-level assets.",
    )
    .listing(),
    named(
        &["projects", "assets"],
        "listAssets",
        "GET",
        "{+parent}:listAssets",
        ("parent", ASSET),
        LIST,
        "projects/p/assets/f:listAssets",
        "Lists the assets in a folder or image collection.",
    )
    .listing(),
    named(
        &["projects", "assets"],
        "get",
        "GET",
        "{+name}",
        ("name", ASSET),
        &[],
        "projects/p/assets/f/a",
        "Gets an asset.",
    ),
    named(
        &["projects", "assets"],
        "create",
        "POST",
        "{+parent}/assets",
        ("parent", PROJECT),
        CREATE,
        "projects/p/assets",
        "Creates a FOLDER or IMAGE_COLLECTION asset.",
    ),
    named(
        &["projects", "assets"],
        "delete",
        "DELETE",
        "{+name}",
        ("name", ASSET),
        &[],
        "projects/p/assets/f/a",
        "Deletes an asset (a folder or collection only when empty).",
    ),
    named(
        &["projects", "assets"],
        "patch",
        "PATCH",
        "{+name}",
        ("name", ASSET),
        &[("updateMask", "string", Some("google-fieldmask"))],
        "projects/p/assets/f/a",
        "Updates an asset's properties, start and end time.",
    ),
    named(
        &["projects", "assets"],
        "move",
        "POST",
        "{+sourceName}:move",
        ("sourceName", ASSET),
        &[],
        "projects/p/assets/f/a:move",
        "Moves (renames) an asset, with its contents.",
    ),
    named(
        &["projects", "assets"],
        "copy",
        "POST",
        "{+sourceName}:copy",
        ("sourceName", ASSET),
        &[],
        "projects/p/assets/f/a:copy",
        "Copies an asset.",
    ),
    named(
        &["projects", "assets"],
        "getIamPolicy",
        "POST",
        "{+resource}:getIamPolicy",
        ("resource", ASSET),
        &[],
        "projects/p/assets/f/a:getIamPolicy",
        "The asset's access policy: the project's bindings.",
    ),
];

/// Methods the client can call that longrun does not emulate.
pub const NOT_EMULATED: &[Method] = &[
    on_project(
        &["projects", "value"],
        "compute",
        "{+project}/value:compute",
        "projects/p/value:compute",
        COMPUTE,
    ),
    on_project(
        &["projects", "image"],
        "computePixels",
        "{+project}/image:computePixels",
        "projects/p/image:computePixels",
        COMPUTE,
    ),
    on_project(
        &["projects", "image"],
        "importExternal",
        "{+project}/image:importExternal",
        "projects/p/image:importExternal",
        COMPUTE,
    ),
    on_project(
        &["projects", "imageCollection"],
        "computeImages",
        "{+project}/imageCollection:computeImages",
        "projects/p/imageCollection:computeImages",
        COMPUTE,
    ),
    on_project(
        &["projects", "table"],
        "computeFeatures",
        "{+project}/table:computeFeatures",
        "projects/p/table:computeFeatures",
        COMPUTE,
    ),
    named(
        &["projects", "maps"],
        "create",
        "POST",
        "{+parent}/maps",
        ("parent", PROJECT),
        &[("workloadTag", "string", None)],
        "projects/p/maps",
        COMPUTE,
    ),
    named(
        &["projects", "thumbnails"],
        "create",
        "POST",
        "{+parent}/thumbnails",
        ("parent", PROJECT),
        &[("workloadTag", "string", None)],
        "projects/p/thumbnails",
        COMPUTE,
    ),
    named(
        &["projects", "thumbnails"],
        "getPixels",
        "GET",
        "{+name}:getPixels",
        ("name", "^projects/[^/]+/thumbnails/[^/]+$"),
        &[],
        "projects/p/thumbnails/t:getPixels",
        COMPUTE,
    ),
    named(
        &["projects", "videoThumbnails"],
        "create",
        "POST",
        "{+parent}/videoThumbnails",
        ("parent", PROJECT),
        &[("workloadTag", "string", None)],
        "projects/p/videoThumbnails",
        COMPUTE,
    ),
    named(
        &["projects", "videoThumbnails"],
        "getPixels",
        "GET",
        "{+name}:getPixels",
        ("name", "^projects/[^/]+/videoThumbnails/[^/]+$"),
        &[],
        "projects/p/videoThumbnails/t:getPixels",
        COMPUTE,
    ),
    named(
        &["projects", "filmstripThumbnails"],
        "create",
        "POST",
        "{+parent}/filmstripThumbnails",
        ("parent", PROJECT),
        &[("workloadTag", "string", None)],
        "projects/p/filmstripThumbnails",
        COMPUTE,
    ),
    named(
        &["projects", "filmstripThumbnails"],
        "getPixels",
        "GET",
        "{+name}:getPixels",
        ("name", "^projects/[^/]+/filmstripThumbnails/[^/]+$"),
        &[],
        "projects/p/filmstripThumbnails/t:getPixels",
        COMPUTE,
    ),
    named(
        &["projects", "maps", "tiles"],
        "get",
        "GET",
        "{+parent}/tiles/{zoom}/{x}/{y}",
        ("parent", "^projects/[^/]+/maps/[^/]+$"),
        &[],
        "projects/p/maps/m/tiles/3/1/2",
        COMPUTE,
    ),
    named(
        &["projects", "tables"],
        "create",
        "POST",
        "{+parent}/tables",
        ("parent", PROJECT),
        &[("workloadTag", "string", None)],
        "projects/p/tables",
        COMPUTE,
    ),
    named(
        &["projects", "tables"],
        "getFeatures",
        "GET",
        "{+name}:getFeatures",
        ("name", "^projects/[^/]+/tables/[^/]+$"),
        &[],
        "projects/p/tables/t:getFeatures",
        COMPUTE,
    ),
    named(
        &["projects", "featureView"],
        "create",
        "POST",
        "{+parent}/featureView",
        ("parent", PROJECT),
        &[("workloadTag", "string", None)],
        "projects/p/featureView",
        COMPUTE,
    ),
    named(
        &["projects", "assets"],
        "getPixels",
        "POST",
        "{+name}:getPixels",
        ("name", ASSET),
        &[],
        "projects/p/assets/a:getPixels",
        COMPUTE,
    ),
    named(
        &["projects", "assets"],
        "listFeatures",
        "GET",
        "{+parent}:listFeatures",
        ("parent", ASSET),
        FEATURES,
        "projects/p/assets/a:listFeatures",
        COMPUTE,
    ),
    named(
        &["projects", "assets"],
        "listImages",
        "GET",
        "{+parent}:listImages",
        ("parent", ASSET),
        IMAGES,
        "projects/p/assets/a:listImages",
        "Not emulated: use listAssets (400 NOT_EMULATED).",
    ),
    named(
        &["projects", "assets"],
        "search",
        "GET",
        "{+project}/assets:search",
        ("project", PROJECT),
        &[
            ("query", "string", None),
            ("pageSize", "integer", Some("int32")),
            ("nextPageToken", "string", None),
        ],
        "projects/p/assets:search",
        "Not emulated: Earth Engine documents no query language for it and its clients never \
         call it; list assets with listAssets (400 NOT_EMULATED).",
    ),
    named(
        &["projects", "assets"],
        "setIamPolicy",
        "POST",
        "{+resource}:setIamPolicy",
        ("resource", ASSET),
        &[],
        "projects/p/assets/a:setIamPolicy",
        "Not emulated: access comes from the server's [[iam.binding]] (400 NOT_EMULATED).",
    ),
    named(
        &["projects", "assets"],
        "testIamPermissions",
        "POST",
        "{+resource}:testIamPermissions",
        ("resource", ASSET),
        &[],
        "projects/p/assets/a:testIamPermissions",
        "Not emulated (400 NOT_EMULATED).",
    ),
];

/// The id a method has in the discovery document without `earthengine.projects.`:
/// `value.compute`, `assets.getPixels`, `listAssets`.
pub fn short_id(method: &Method) -> String {
    let mut parts: Vec<&str> = method.resource.iter().skip(1).copied().collect();
    parts.push(method.name);
    parts.join(".")
}

/// The answer of a method that is not emulated.
pub fn not_emulated(id: &str) -> ApiError {
    ApiError::new(
        Code::FailedPrecondition,
        "NOT_EMULATED",
        format!(
            "earthengine.projects.{id} is not emulated: longrun runs Earth Engine tasks \
             (exports, ingestions) and keeps an asset registry, but computes nothing"
        ),
    )
    .with("method", format!("earthengine.projects.{id}"))
}

/// `path` without a suffix matching `template` (whose `{name}` segments match any one
/// non-empty segment).
pub fn strip_template_suffix<'a>(path: &'a str, template: &str) -> Option<&'a str> {
    if !template.contains('{') {
        return path.strip_suffix(template);
    }
    let n = template.split('/').count() - 1;
    let mut cut = path.len();
    for _ in 0..n {
        cut = path[..cut].rfind('/')?;
    }
    let tail = &path[cut..];
    let fits = tail.split('/').zip(template.split('/')).all(|(got, want)| {
        if want.starts_with('{') {
            !got.is_empty()
        } else {
            got == want
        }
    });
    fits.then_some(&path[..cut])
}

/// Whether `path` (after `projects/P/`) fits a method template (after `{+param}` is
/// replaced by the parameter's pattern, minus its `projects/P/` part).
fn fits(method: &Method, http: &http::Method, path: &str) -> Option<bool> {
    let param = format!("{{+{}}}", method.param.0);
    let (before, after) = method.path.split_once(&param)?;
    if !before.is_empty() {
        return None;
    }
    let rest = strip_template_suffix(path, after)?;
    // What the parameter holds past `projects/P`.
    let pattern = method
        .param
        .1
        .trim_start_matches("^projects/[^/]+")
        .trim_end_matches('$');
    let matched = match pattern {
        "" => rest.is_empty(),
        "/assets/.+" => rest.strip_prefix("/assets/").is_some_and(|r| !r.is_empty()),
        "/config" => rest == "/config",
        other => {
            // `/COLLECTION/[^/]+`
            let collection = other.trim_end_matches("/[^/]+");
            rest.strip_prefix(collection)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|r| !r.is_empty() && !r.contains('/'))
        }
    };
    matched.then(|| http.as_str() == method.http)
}

/// The not-emulated method `http path` calls (`path` after `projects/P/`, `:verb` included);
/// `Err` when the path is one of them but the HTTP method is not.
pub fn find(http: &http::Method, path: &str) -> Option<Result<String, ApiError>> {
    // `path` relative to `projects/P`: empty for the project itself.
    let relative = if path.is_empty() || path.starts_with(':') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut wrong_method = false;
    let mut allowed = "";
    for method in NOT_EMULATED {
        match fits(method, http, &relative) {
            Some(true) => return Some(Ok(short_id(method))),
            Some(false) => {
                wrong_method = true;
                allowed = method.http;
            }
            None => {}
        }
    }
    wrong_method.then(|| Err(ApiError::method_not_allowed(http, allowed)))
}
const fn start(
    resource: &'static [&'static str],
    name: &'static str,
    path: &'static str,
    request: &'static str,
    example: &'static str,
    description: &'static str,
) -> Method {
    Method {
        resource,
        name,
        http: "POST",
        path,
        param: ("project", PROJECT),
        query: &[],
        request: Some(request),
        response: "Operation",
        description,
        example,
    }
}

/// The algorithm list and the task-starting methods (docs/earth-engine.md).
pub const TASKS: &[Method] = &[
    Method {
        resource: &["projects", "algorithms"],
        name: "list",
        http: "GET",
        path: "{+parent}/algorithms",
        param: ("parent", PROJECT),
        query: &[],
        request: None,
        response: "ListAlgorithmsResponse",
        description: "Lists the algorithms clients may build expressions from.",
        example: "projects/p/algorithms",
    },
    start(
        &["projects", "image"],
        "export",
        "{+project}/image:export",
        "ExportImageRequest",
        "projects/p/image:export",
        "Starts an image export (EXPORT_IMAGE).",
    ),
    start(
        &["projects", "table"],
        "export",
        "{+project}/table:export",
        "ExportTableRequest",
        "projects/p/table:export",
        "Starts a table export (EXPORT_FEATURES).",
    ),
    start(
        &["projects", "video"],
        "export",
        "{+project}/video:export",
        "ExportVideoRequest",
        "projects/p/video:export",
        "Starts a video export (EXPORT_VIDEO).",
    ),
    start(
        &["projects", "map"],
        "export",
        "{+project}/map:export",
        "ExportMapRequest",
        "projects/p/map:export",
        "Starts a map tiles export (EXPORT_TILES).",
    ),
    start(
        &["projects", "videoMap"],
        "export",
        "{+project}/videoMap:export",
        "ExportVideoMapRequest",
        "projects/p/videoMap:export",
        "Starts a video map export (EXPORT_VIDEO_MAP).",
    ),
    start(
        &["projects", "classifier"],
        "export",
        "{+project}/classifier:export",
        "ExportClassifierRequest",
        "projects/p/classifier:export",
        "Starts a classifier export (EXPORT_CLASSIFIER).",
    ),
    start(
        &["projects", "image"],
        "import",
        "{+project}/image:import",
        "ImportImageRequest",
        "projects/p/image:import",
        "Starts an image ingestion (INGEST_IMAGE).",
    ),
    start(
        &["projects", "table"],
        "import",
        "{+project}/table:import",
        "ImportTableRequest",
        "projects/p/table:import",
        "Starts a table ingestion (INGEST_TABLE).",
    ),
];
