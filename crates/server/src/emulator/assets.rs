//! The asset registry over REST (docs/earth-engine.md#assets): `getAsset`, `listAssets` (of a
//! project or of a folder or collection, paged), `createAsset` (FOLDER, IMAGE_COLLECTION),
//! `deleteAsset`, `updateAsset` (`patch`: properties, start and end time), `move`, `copy`
//! and `getIamPolicy`. Tasks add IMAGE and TABLE assets when they succeed (`tasks`).
//!
//! Rules taken from Earth Engine: a parent folder must exist; a folder holds any asset but
//! an image collection holds only images; a folder or collection is deleted only when
//! empty; a taken name is refused unless overwriting is asked for. Asset ids are
//! `/`-separated segments of `[A-Za-z0-9_.-]`, none of them `.` or `..`.

use crate::auth::iam::Permission;
use crate::kit::body;
use crate::kit::error::ApiError;
use crate::kit::json::json_body;
use axum::response::Response;
use longrun_store::{Asset, AssetWrite, Assets};
use longrun_types::{Code, NameError, Project, Timestamp, limits};
use serde_json::{Map, Value, json};

/// An asset method.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Children of a folder or collection (`Some(id)`), or the project's top level.
    List(Option<String>),
    Get(String),
    Create,
    Delete(String),
    Patch(String),
    Move(String),
    Copy(String),
    GetIamPolicy(String),
}

/// Listing page sizes: the default, and the most one page holds.
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

impl Call {
    /// The discovery id without `earthengine.projects.` (`assets.get`, `listAssets`).
    pub fn method_id(&self) -> &'static str {
        match self {
            Call::List(None) => "listAssets",
            Call::List(Some(_)) => "assets.listAssets",
            Call::Get(_) => "assets.get",
            Call::Create => "assets.create",
            Call::Delete(_) => "assets.delete",
            Call::Patch(_) => "assets.patch",
            Call::Move(_) => "assets.move",
            Call::Copy(_) => "assets.copy",
            Call::GetIamPolicy(_) => "assets.getIamPolicy",
        }
    }

    /// The permission needed on the project in the path (a move or copy also needs
    /// `earthengine.assets.create` on the destination's project).
    pub fn permission(&self) -> Permission {
        match self {
            Call::List(_) => Permission::AssetsList,
            Call::Get(_) | Call::GetIamPolicy(_) => Permission::AssetsGet,
            Call::Create | Call::Copy(_) => Permission::AssetsCreate,
            Call::Patch(_) | Call::Move(_) => Permission::AssetsUpdate,
            Call::Delete(_) => Permission::AssetsDelete,
        }
    }

    /// The query parameters it takes besides the system ones: (camelCase, snake_case).
    pub fn parameters(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Call::List(_) => &[
                ("pageSize", "page_size"),
                ("pageToken", "page_token"),
                ("filter", "filter"),
                ("view", "view"),
            ],
            Call::Create => &[("assetId", "asset_id"), ("overwrite", "overwrite")],
            Call::Patch(_) => &[("updateMask", "update_mask")],
            _ => &[],
        }
    }
}

/// Checks an asset id (the part after `assets/`), which the request gives as `field`: at
/// most `limits::ASSET_ID` bytes of the characters Earth Engine allows.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    limits::check(field, id, limits::ASSET_ID)?;
    let ok = !id.is_empty()
        && id.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "INVALID_ASSET_NAME",
            format!(
                "invalid asset id `{id}`: ids are /-separated segments of letters, digits, \
                 `_`, `.` and `-`, none empty, `.` or `..`"
            ),
        )
        .with("assetId", id))
    }
}

/// Routes `path` (after `projects/P/`, or `:listAssets` after `projects/P`).
pub fn route(http: &http::Method, path: &str) -> Option<Result<Call, ApiError>> {
    use http::Method;
    if path == ":listAssets" {
        return Some(match *http {
            Method::GET => Ok(Call::List(None)),
            _ => Err(ApiError::method_not_allowed(http, "GET")),
        });
    }
    if path == "assets" {
        return Some(match *http {
            Method::POST => Ok(Call::Create),
            _ => Err(ApiError::method_not_allowed(http, "POST")),
        });
    }
    let rest = path.strip_prefix("assets/")?;
    let (id, verb) = match rest.rsplit_once(':') {
        Some((id, verb)) if !verb.contains('/') => (id, Some(verb)),
        _ => (rest, None),
    };
    let call = match (http, verb) {
        (&Method::GET, None) => Call::Get(id.into()),
        (&Method::DELETE, None) => Call::Delete(id.into()),
        (&Method::PATCH, None) => Call::Patch(id.into()),
        (&Method::GET, Some("listAssets")) => Call::List(Some(id.into())),
        (&Method::POST, Some("move")) => Call::Move(id.into()),
        (&Method::POST, Some("copy")) => Call::Copy(id.into()),
        (&Method::POST, Some("getIamPolicy")) => Call::GetIamPolicy(id.into()),
        // Other verbs: a method not emulated, or nothing.
        (_, Some(_)) => return None,
        _ => {
            return Some(Err(ApiError::method_not_allowed(
                http,
                "GET, DELETE, PATCH",
            )));
        }
    };
    Some(check_id("assetId", id).map(|()| call))
}

/// `projects/P/assets/ID`.
pub fn name(project: &Project, id: &str) -> String {
    format!("projects/{}/assets/{id}", project.as_str())
}

/// The parent of an asset name: the folder holding it, or `projects/P`.
pub fn parent_of(name: &str) -> String {
    let (project_part, id) = name.split_once("/assets/").expect("an asset name");
    match id.rsplit_once('/') {
        Some((parent, _)) => format!("{project_part}/assets/{parent}"),
        None => project_part.to_string(),
    }
}

/// Splits `projects/P/assets/ID` (given as `field`) into the project and the id, checking
/// both.
pub fn parse_name(field: &str, name: &str) -> Result<(Project, String), ApiError> {
    let bad = || {
        ApiError::invalid(
            "INVALID_ASSET_NAME",
            format!("`{name}` is not an asset name projects/PROJECT/assets/ID"),
        )
    };
    let rest = name.strip_prefix("projects/").ok_or_else(bad)?;
    let (project, id) = rest.split_once("/assets/").ok_or_else(bad)?;
    let project = Project::parse(project).map_err(|e| match e {
        NameError::TooLong(too_long) => too_long.of(field).into(),
        NameError::Invalid(_) => bad(),
    })?;
    check_id(field, id)?;
    Ok((project, id.to_string()))
}

/// Whether assets of this type hold others (folders and image collections) rather than
/// data (images, tables, classifiers: Earth Engine's leaf assets).
pub fn is_container(asset_type: &str) -> bool {
    matches!(asset_type, "FOLDER" | "IMAGE_COLLECTION")
}

/// The wire form of an asset (Earth Engine's `EarthEngineAsset`). A leaf asset carries
/// `sizeBytes`, an int64 as a JSON string as Google writes it: the size its task recorded
/// (see `tasks`), `"0"` for one recorded without a size; folders and collections carry none,
/// as on Google's server.
pub fn render(asset: &Asset) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(asset.asset_type));
    out.insert("name".into(), json!(asset.name));
    out.insert("id".into(), json!(asset.name));
    if let Value::Object(record) = &asset.record {
        for (k, v) in record {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if is_container(&asset.asset_type) {
        out.remove(SIZE_BYTES);
    } else {
        out.entry(SIZE_BYTES).or_insert_with(|| json!("0"));
    }
    Value::Object(out)
}

/// The field of a leaf asset's size.
pub const SIZE_BYTES: &str = "sizeBytes";

/// 404 NOT_FOUND in Earth Engine's words, ErrorInfo reason `ASSET_NOT_FOUND`.
pub fn not_found(name: &str) -> ApiError {
    ApiError::new(
        Code::NotFound,
        "ASSET_NOT_FOUND",
        format!("Asset '{name}' does not exist or doesn't allow this operation."),
    )
    .with("name", name)
}

fn backend(e: longrun_store::Error) -> ApiError {
    ApiError::from(longrun_engine::Error::from(e))
}

/// Whether an asset of `asset_type` may go under `parent`: the parent exists and is a
/// folder, or an image collection and the asset an image.
pub async fn check_parent(
    store: &dyn Assets,
    parent: &str,
    asset_type: &str,
) -> Result<(), ApiError> {
    if longrun_store::is_project_parent(parent) {
        return Ok(());
    }
    let Some(p) = store.asset(parent).await.map_err(backend)? else {
        return Err(ApiError::new(
            Code::NotFound,
            "PARENT_NOT_FOUND",
            format!("Folder '{parent}' does not exist or doesn't allow this operation."),
        )
        .with("parent", parent));
    };
    match (p.asset_type.as_str(), asset_type) {
        ("FOLDER", _) | ("IMAGE_COLLECTION", "IMAGE") => Ok(()),
        (other, _) => Err(ApiError::new(
            Code::FailedPrecondition,
            "INVALID_PARENT",
            format!("'{parent}' is a {other}: it cannot hold a {asset_type}"),
        )
        .with("parent", parent)),
    }
}

/// Writes `asset` after checking its parent; the store's answer as Google's error.
pub async fn put(store: &dyn Assets, asset: Asset, overwrite: bool) -> Result<Asset, ApiError> {
    check_parent(store, &asset.parent, &asset.asset_type).await?;
    match store
        .put_asset(asset.clone(), overwrite)
        .await
        .map_err(backend)?
    {
        AssetWrite::Done => Ok(asset),
        AssetWrite::Exists => Err(ApiError::new(
            Code::AlreadyExists,
            "ASSET_EXISTS",
            format!("Cannot overwrite asset '{}'.", asset.name),
        )
        .with("name", asset.name)),
        AssetWrite::NotEmpty => Err(not_empty(&asset.name)),
        AssetWrite::NoParent | AssetWrite::NotFound | AssetWrite::TooLong => {
            check_parent(store, &asset.parent, &asset.asset_type).await?;
            Err(not_found(&asset.parent))
        }
    }
}

fn not_empty(name: &str) -> ApiError {
    ApiError::new(
        Code::FailedPrecondition,
        "ASSET_NOT_EMPTY",
        format!("Asset '{name}' is not empty: remove what it holds first."),
    )
    .with("name", name)
}

/// Body of `createAsset`: Earth Engine's `EarthEngineAsset`; the fields kept are these.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    #[serde(rename = "type")]
    asset_type: Option<String>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    start_time: Option<String>,
    end_time: Option<String>,
    #[serde(flatten)]
    _rest: Map<String, Value>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MoveBody {
    destination_name: Option<String>,
    #[serde(default)]
    overwrite: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    #[serde(default)]
    asset: Map<String, Value>,
    update_mask: Option<UpdateMask>,
}

/// A FieldMask in its object form (`{"paths": [...]}`) or its string form (`"a,b"`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum UpdateMask {
    Paths { paths: Vec<String> },
    Joined(String),
}

impl UpdateMask {
    fn paths(self) -> Vec<String> {
        match self {
            UpdateMask::Paths { paths } => paths,
            UpdateMask::Joined(s) => s
                .split(',')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

/// A new record: the given fields and the update time.
fn record(
    properties: Option<Map<String, Value>>,
    start: Option<String>,
    end: Option<String>,
) -> Value {
    let mut r = Map::new();
    r.insert("updateTime".into(), json!(Timestamp::now().to_string()));
    if let Some(p) = properties.filter(|p| !p.is_empty()) {
        r.insert("properties".into(), Value::Object(p));
    }
    if let Some(s) = start {
        r.insert("startTime".into(), json!(s));
    }
    if let Some(e) = end {
        r.insert("endTime".into(), json!(e));
    }
    Value::Object(r)
}

fn bool_param(query: &body::Query, key: &'static str) -> Result<bool, ApiError> {
    match query.get(key) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            "INVALID_ARGUMENT",
            format!("{key} takes true or false, not `{other}`"),
        )),
    }
}

/// Serves an asset call whose permission on `project` has been checked; `check` checks a
/// permission on another project (a move's or copy's destination).
pub async fn handle(
    store: &dyn Assets,
    project: Project,
    call: Call,
    query: &body::Query,
    bytes: &[u8],
    check: impl Fn(Permission, &str) -> Result<(), ApiError>,
    bindings: impl Fn(&str) -> Value,
) -> Result<Response, ApiError> {
    let copying = matches!(call, Call::Copy(_));
    match call {
        Call::Get(id) => {
            let name = name(&project, &id);
            let asset = store
                .asset(&name)
                .await
                .map_err(backend)?
                .ok_or_else(|| not_found(&name))?;
            Ok(json_body(&render(&asset)))
        }
        Call::List(id) => {
            let parent = match &id {
                Some(id) => {
                    let parent = name(&project, id);
                    let found = store.asset(&parent).await.map_err(backend)?;
                    match found {
                        Some(a) if is_container(&a.asset_type) => parent,
                        Some(a) => {
                            return Err(ApiError::invalid(
                                "NOT_A_CONTAINER",
                                format!(
                                    "'{parent}' is a {}: only folders and image collections hold assets",
                                    a.asset_type
                                ),
                            ));
                        }
                        None => return Err(not_found(&parent)),
                    }
                }
                None => format!("projects/{}", project.as_str()),
            };
            if query.get("filter").is_some_and(|f| !f.is_empty()) {
                return Err(ApiError::new(
                    Code::FailedPrecondition,
                    "NOT_EMULATED",
                    "listAssets filters (and region, startTime, endTime) are not emulated: \
                     longrun lists every asset of a folder",
                )
                .with("method", "earthengine.projects.assets.listAssets"));
            }
            let size = match query.get("pageSize") {
                None | Some("") | Some("0") => DEFAULT_PAGE,
                Some(text) => text
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "INVALID_PAGE_SIZE",
                            format!("pageSize `{text}` is not a positive integer"),
                        )
                    })?
                    .min(MAX_PAGE as i64) as usize,
            };
            // The token is the last name of the previous page; it grants nothing (the
            // permission was checked on this request) and must lie under this parent.
            let after = match query.get("pageToken") {
                None | Some("") => None,
                Some(token) => {
                    let prefix = if id.is_some() {
                        format!("{parent}/")
                    } else {
                        format!("{parent}/assets/")
                    };
                    if !token.starts_with(&prefix) {
                        return Err(ApiError::invalid(
                            "INVALID_PAGE_TOKEN",
                            "the page token belongs to another listing",
                        ));
                    }
                    Some(token.to_string())
                }
            };
            let mut page = store
                .assets(&parent, after.as_deref(), size + 1)
                .await
                .map_err(backend)?;
            let more = page.len() > size;
            page.truncate(size);
            let mut out = json!({"assets": page.iter().map(render).collect::<Vec<_>>()});
            if more {
                out["nextPageToken"] = json!(page.last().map(|a| a.name.clone()));
            }
            Ok(json_body(&out))
        }
        Call::Create => {
            let id = query
                .get("assetId")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "MISSING_ASSET_ID",
                        "assetId (the id under the project's assets) is required",
                    )
                })?;
            check_id("assetId", id)?;
            let overwrite = bool_param(query, "overwrite")?;
            let b: CreateBody = body::json(bytes)?;
            let asset_type = b.asset_type.unwrap_or_default();
            if asset_type != "FOLDER" && asset_type != "IMAGE_COLLECTION" {
                return Err(ApiError::invalid(
                    "UNSUPPORTED_ASSET_TYPE",
                    format!(
                        "createAsset makes FOLDER and IMAGE_COLLECTION assets, not `{asset_type}`; \
                         images and tables come from ingestions and exports"
                    ),
                )
                .with("type", asset_type));
            }
            let name = name(&project, id);
            let asset = Asset {
                parent: parent_of(&name),
                name,
                asset_type,
                record: record(b.properties, b.start_time, b.end_time),
            };
            Ok(json_body(&render(&put(store, asset, overwrite).await?)))
        }
        Call::Delete(id) => {
            let name = name(&project, &id);
            match store.delete_asset(&name).await.map_err(backend)? {
                AssetWrite::Done => Ok(json_body(&json!({}))),
                AssetWrite::NotEmpty => Err(not_empty(&name)),
                _ => Err(not_found(&name)),
            }
        }
        Call::Patch(id) => {
            let name = name(&project, &id);
            let b: PatchBody = body::json(bytes)?;
            let mut paths = b.update_mask.map(UpdateMask::paths).unwrap_or_default();
            if let Some(q) = query.get("updateMask") {
                paths.extend(q.split(',').filter(|p| !p.is_empty()).map(String::from));
            }
            if paths.is_empty() {
                paths = vec!["properties".into(), "startTime".into(), "endTime".into()];
            }
            let mut asset = store
                .asset(&name)
                .await
                .map_err(backend)?
                .ok_or_else(|| not_found(&name))?;
            let record = asset.record.as_object_mut().expect("records are objects");
            for path in paths {
                apply(record, &b.asset, &path)?;
            }
            record.insert("updateTime".into(), json!(Timestamp::now().to_string()));
            store
                .put_asset(asset.clone(), true)
                .await
                .map_err(backend)?;
            Ok(json_body(&render(&asset)))
        }
        Call::Move(id) | Call::Copy(id) => {
            let source = name(&project, &id);
            let b: MoveBody = body::json(bytes)?;
            let destination = b
                .destination_name
                .filter(|d| !d.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid("MISSING_DESTINATION", "destinationName is required")
                })?;
            let (dest_project, _) = parse_name("destinationName", &destination)?;
            check(Permission::AssetsCreate, dest_project.as_str())?;
            let asset = store
                .asset(&source)
                .await
                .map_err(backend)?
                .ok_or_else(|| not_found(&source))?;
            if destination == source || destination.starts_with(&format!("{source}/")) {
                return Err(ApiError::invalid(
                    "INVALID_DESTINATION",
                    format!(
                        "cannot {} '{source}' into itself",
                        if copying { "copy" } else { "move" }
                    ),
                ));
            }
            let to_parent = parent_of(&destination);
            check_parent(store, &to_parent, &asset.asset_type).await?;
            if copying {
                let holds = !store
                    .assets(&source, None, 1)
                    .await
                    .map_err(backend)?
                    .is_empty();
                if holds {
                    return Err(ApiError::new(
                        Code::FailedPrecondition,
                        "NOT_EMULATED",
                        format!(
                            "copying '{source}' with what it holds is not emulated: copy its assets one by one"
                        ),
                    ));
                }
                let mut copy = asset.clone();
                copy.name = destination;
                copy.parent = to_parent;
                copy.record["updateTime"] = json!(Timestamp::now().to_string());
                return Ok(json_body(&render(&put(store, copy, b.overwrite).await?)));
            }
            match store
                .move_asset(&source, &destination, &to_parent)
                .await
                .map_err(backend)?
            {
                AssetWrite::Done => {}
                AssetWrite::Exists => {
                    return Err(ApiError::new(
                        Code::AlreadyExists,
                        "ASSET_EXISTS",
                        format!("Cannot overwrite asset '{destination}'."),
                    ));
                }
                AssetWrite::NoParent => return Err(not_found(&to_parent)),
                AssetWrite::TooLong => {
                    return Err(ApiError::new(
                        Code::InvalidArgument,
                        "TOO_LONG",
                        format!(
                            "destinationName: moving '{source}' to '{destination}' would make \
                             the id of an asset it holds longer than {} bytes",
                            limits::ASSET_ID
                        ),
                    )
                    .with("field", "destinationName")
                    .with("limit", limits::ASSET_ID.to_string()));
                }
                _ => return Err(not_found(&source)),
            }
            let moved = store
                .asset(&destination)
                .await
                .map_err(backend)?
                .ok_or_else(|| not_found(&destination))?;
            Ok(json_body(&render(&moved)))
        }
        Call::GetIamPolicy(id) => {
            let name = name(&project, &id);
            store
                .asset(&name)
                .await
                .map_err(backend)?
                .ok_or_else(|| not_found(&name))?;
            Ok(json_body(&bindings(project.as_str())))
        }
    }
}

/// Applies one `updateMask` path: `properties` (all), `properties.KEY` or
/// `properties."KEY"` (one; absent in the update = removed), `startTime`/`start_time`,
/// `endTime`/`end_time`.
fn apply(
    record: &mut Map<String, Value>,
    update: &Map<String, Value>,
    path: &str,
) -> Result<(), ApiError> {
    let set = |record: &mut Map<String, Value>, key: &str, value: Option<&Value>| match value {
        Some(v) if !v.is_null() => {
            record.insert(key.to_string(), v.clone());
        }
        _ => {
            record.remove(key);
        }
    };
    match path {
        "properties" => set(record, "properties", update.get("properties")),
        "startTime" | "start_time" => set(
            record,
            "startTime",
            update.get("startTime").or(update.get("start_time")),
        ),
        "endTime" | "end_time" => set(
            record,
            "endTime",
            update.get("endTime").or(update.get("end_time")),
        ),
        _ => {
            let Some(key) = path.strip_prefix("properties.") else {
                return Err(ApiError::invalid(
                    "INVALID_UPDATE_MASK",
                    format!("updateMask path `{path}` is not properties, properties.KEY, startTime or endTime"),
                )
                .with("path", path));
            };
            let key = key
                .strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .unwrap_or(key);
            let value = update
                .get("properties")
                .and_then(|p| p.get(key))
                .filter(|v| !v.is_null())
                .cloned();
            let properties = record.entry("properties").or_insert_with(|| json!({}));
            if let Value::Object(props) = properties {
                match value {
                    Some(v) => {
                        props.insert(key.to_string(), v);
                    }
                    None => {
                        props.remove(key);
                    }
                }
            }
        }
    }
    Ok(())
}
