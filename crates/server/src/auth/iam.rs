//! Project IAM: bindings of members to built-in roles on projects (or `*`), and the
//! permission each method needs (docs/auth.md#permissions).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    OperationsGet,
    OperationsList,
    OperationsUpdate,
    OperationsCreate,
    OperationsDelete,
    WorkersExecute,
    ServiceAccountsManage,
    AssetsGet,
    AssetsList,
    AssetsCreate,
    AssetsUpdate,
    AssetsDelete,
    /// `GET /metrics` (docs/watch.md#metrics), granted on `*`.
    MetricsGet,
    /// Read a project's config (docs/projects.md#project-config).
    ConfigGet,
    /// Change a project's config.
    ConfigUpdate,
    /// Register, update and unregister projects (docs/projects.md#registry).
    ProjectsManage,
    /// Pause and resume a project's queues (docs/queues.md).
    QueuesUpdate,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OperationsGet => "earthengine.operations.get",
            Permission::OperationsList => "earthengine.operations.list",
            Permission::OperationsUpdate => "earthengine.operations.update",
            Permission::OperationsCreate => "longrun.operations.create",
            Permission::OperationsDelete => "earthengine.operations.delete",
            Permission::WorkersExecute => "longrun.workers.execute",
            Permission::ServiceAccountsManage => "longrun.serviceAccounts.manage",
            Permission::AssetsGet => "earthengine.assets.get",
            Permission::AssetsList => "earthengine.assets.list",
            Permission::AssetsCreate => "earthengine.assets.create",
            Permission::AssetsUpdate => "earthengine.assets.update",
            Permission::AssetsDelete => "earthengine.assets.delete",
            Permission::MetricsGet => "longrun.metrics.get",
            Permission::ConfigGet => "earthengine.config.get",
            Permission::ConfigUpdate => "earthengine.config.update",
            Permission::ProjectsManage => "longrun.projects.manage",
            Permission::QueuesUpdate => "longrun.queues.update",
        }
    }
}

/// The built-in roles and what they grant.
pub const ROLES: &[(&str, &[Permission])] = {
    use Permission::*;
    &[
        (
            "roles/earthengine.viewer",
            &[
                OperationsGet,
                OperationsList,
                AssetsGet,
                AssetsList,
                ConfigGet,
            ],
        ),
        (
            "roles/earthengine.writer",
            &[
                OperationsGet,
                OperationsList,
                OperationsUpdate,
                OperationsCreate,
                AssetsGet,
                AssetsList,
                AssetsCreate,
                AssetsUpdate,
                AssetsDelete,
                ConfigGet,
            ],
        ),
        (
            "roles/earthengine.admin",
            &[
                OperationsGet,
                OperationsList,
                OperationsUpdate,
                OperationsCreate,
                OperationsDelete,
                AssetsGet,
                AssetsList,
                AssetsCreate,
                AssetsUpdate,
                AssetsDelete,
                ConfigGet,
                ConfigUpdate,
                QueuesUpdate,
            ],
        ),
        ("roles/longrun.worker", &[WorkersExecute, OperationsGet]),
        ("roles/longrun.projectAdmin", &[ProjectsManage]),
        (
            "roles/longrun.serviceAccountAdmin",
            &[ServiceAccountsManage],
        ),
        ("roles/longrun.metricsViewer", &[MetricsGet]),
    ]
};

/// One `[[iam.binding]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// A project id, or `*` for every project.
    pub project: String,
    pub role: String,
    /// `serviceAccount:EMAIL`, `user:EMAIL` or `allAuthenticatedUsers`.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Iam {
    #[serde(rename = "binding")]
    pub bindings: Vec<Binding>,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A service account of this server (its tokens come from `/token`).
    ServiceAccount(String),
    /// Someone an external identity provider vouches for: their email, or else the subject.
    User(String),
    /// The holder of a verified client certificate (mTLS): its SAN URI, else its SAN email.
    Certificate(String),
}

impl Principal {
    /// The member name bindings use, also what audit records show.
    pub fn member(&self) -> String {
        match self {
            Principal::ServiceAccount(email) => format!("serviceAccount:{email}"),
            Principal::User(id) => format!("user:{id}"),
            Principal::Certificate(id) => format!("cert:{id}"),
        }
    }
}

impl Iam {
    pub fn validate(&self) -> anyhow::Result<()> {
        for b in &self.bindings {
            anyhow::ensure!(
                ROLES.iter().any(|(role, _)| *role == b.role),
                "iam.binding: unknown role `{}`; roles are {}",
                b.role,
                ROLES.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(", ")
            );
            anyhow::ensure!(
                b.project == "*" || longrun_types::Project::parse(&b.project).is_ok(),
                "iam.binding: `{}` is not a project id or `*`",
                b.project
            );
            for m in &b.members {
                anyhow::ensure!(
                    m == "allAuthenticatedUsers"
                        || m.strip_prefix("serviceAccount:")
                            .or_else(|| m.strip_prefix("user:"))
                            .or_else(|| m.strip_prefix("cert:"))
                            .is_some_and(|id| !id.is_empty()),
                    "iam.binding: member `{m}` is not serviceAccount:EMAIL, user:EMAIL, \
                     cert:URI_OR_EMAIL or allAuthenticatedUsers"
                );
            }
        }
        Ok(())
    }

    fn grants(binding: &Binding, member: &str, permission: Permission) -> bool {
        binding
            .members
            .iter()
            .any(|m| m == member || m == "allAuthenticatedUsers")
            && ROLES
                .iter()
                .any(|(role, granted)| *role == binding.role && granted.contains(&permission))
    }

    /// Whether `principal` has `permission` on `project`.
    pub fn allows(&self, principal: &Principal, permission: Permission, project: &str) -> bool {
        let member = principal.member();
        self.bindings.iter().any(|b| {
            (b.project == "*" || b.project == project) && Iam::grants(b, &member, permission)
        })
    }

    /// Where `principal` has `permission`: `None` for every project, else the projects.
    pub fn scope(&self, principal: &Principal, permission: Permission) -> Option<Vec<String>> {
        let member = principal.member();
        let mut projects = Vec::new();
        for b in &self.bindings {
            if Iam::grants(b, &member, permission) {
                if b.project == "*" {
                    return None;
                }
                projects.push(b.project.clone());
            }
        }
        projects.sort();
        projects.dedup();
        Some(projects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iam(toml_text: &str) -> Iam {
        let iam: Iam = toml::from_str(toml_text).unwrap();
        iam.validate().unwrap();
        iam
    }

    #[test]
    fn roles_grant_their_permissions_on_their_projects() {
        let iam = iam(r#"
            [[binding]]
            project = "p"
            role = "roles/earthengine.viewer"
            members = ["user:v@x"]
            [[binding]]
            project = "*"
            role = "roles/longrun.worker"
            members = ["serviceAccount:w@p.iam.longrun"]
            [[binding]]
            project = "q"
            role = "roles/earthengine.admin"
            members = ["allAuthenticatedUsers"]
        "#);
        let viewer = Principal::User("v@x".into());
        assert!(iam.allows(&viewer, Permission::OperationsList, "p"));
        assert!(!iam.allows(&viewer, Permission::OperationsUpdate, "p"));
        assert!(!iam.allows(&viewer, Permission::OperationsGet, "r"));
        assert!(iam.allows(&viewer, Permission::OperationsDelete, "q"));
        let worker = Principal::ServiceAccount("w@p.iam.longrun".into());
        assert!(iam.allows(&worker, Permission::WorkersExecute, "anything"));
        assert!(!iam.allows(&worker, Permission::OperationsList, "p"));
        assert_eq!(iam.scope(&worker, Permission::WorkersExecute), None);
        assert_eq!(
            iam.scope(&viewer, Permission::OperationsGet),
            Some(vec!["p".to_string(), "q".to_string()])
        );
        // The same email as a user is not the service account.
        let impostor = Principal::User("w@p.iam.longrun".into());
        assert!(!iam.allows(&impostor, Permission::WorkersExecute, "p"));
    }

    #[test]
    fn unknown_roles_and_members_are_refused() {
        for text in [
            "[[binding]]\nproject = \"p\"\nrole = \"roles/owner\"\nmembers = []",
            "[[binding]]\nproject = \"p\"\nrole = \"roles/earthengine.viewer\"\nmembers = [\"bob\"]",
            "[[binding]]\nproject = \"a/b\"\nrole = \"roles/earthengine.viewer\"\nmembers = []",
        ] {
            let iam: Iam = toml::from_str(text).unwrap();
            assert!(iam.validate().is_err(), "{text}");
        }
    }
}
