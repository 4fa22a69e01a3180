//! Conformance: service accounts, project configs and the project registry.

use super::*;

pub async fn service_accounts_are_kept<S: Store>(store: Arc<S>) {
    let account = |name: &str| ServiceAccount {
        email: format!("{name}@p.iam.longrun"),
        project: "p".into(),
        key_id: format!("key-{name}"),
        public_key_pem: "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n".into(),
        disabled: false,
        create_time: Timestamp(1_000),
    };
    assert!(store.create_account(account("b")).await.unwrap());
    assert!(store.create_account(account("a")).await.unwrap());
    assert!(!store.create_account(account("a")).await.unwrap());
    assert_eq!(
        store.account("a@p.iam.longrun").await.unwrap(),
        Some(account("a"))
    );
    assert_eq!(store.account("c@p.iam.longrun").await.unwrap(), None);
    assert!(
        store
            .set_account_disabled("a@p.iam.longrun", true)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_account_disabled("c@p.iam.longrun", true)
            .await
            .unwrap()
    );
    let disabled = ServiceAccount {
        disabled: true,
        ..account("a")
    };
    assert_eq!(
        store.accounts().await.unwrap(),
        vec![disabled, account("b")]
    );
    assert!(store.delete_account("b@p.iam.longrun").await.unwrap());
    assert!(!store.delete_account("b@p.iam.longrun").await.unwrap());
    assert_eq!(store.accounts().await.unwrap().len(), 1);
}
pub async fn project_export_caps_are_kept<S: Store>(store: Arc<S>) {
    assert_eq!(store.max_concurrent_exports("p").await.unwrap(), 0);
    store.set_max_concurrent_exports("p", 7).await.unwrap();
    assert_eq!(store.max_concurrent_exports("p").await.unwrap(), 7);
    assert_eq!(store.max_concurrent_exports("q").await.unwrap(), 0);
    store.set_max_concurrent_exports("p", 3).await.unwrap();
    assert_eq!(store.max_concurrent_exports("p").await.unwrap(), 3);
    store.set_max_concurrent_exports("p", 0).await.unwrap();
    assert_eq!(store.max_concurrent_exports("p").await.unwrap(), 0);
    assert!(matches!(
        store.set_max_concurrent_exports("p\0", 1).await,
        Err(crate::Error::InvalidArgument(_))
    ));
}
pub async fn the_project_registry_is_kept<S: Store>(store: Arc<S>) {
    let entry = |project: &str, commercial, on: &str, verified| crate::Registration {
        project: project.into(),
        commercial,
        registered_on: on.into(),
        eligibility_verified: verified,
    };
    assert_eq!(store.registration("b").await.unwrap(), None);
    assert!(
        store
            .register_project(entry("b", false, "2024-01-02", false))
            .await
            .unwrap()
    );
    assert!(
        store
            .register_project(entry("a", true, "2025-06-01", true))
            .await
            .unwrap()
    );
    // Registering again changes nothing.
    assert!(
        !store
            .register_project(entry("b", true, "2026-01-01", true))
            .await
            .unwrap()
    );
    assert_eq!(
        store.registration("b").await.unwrap(),
        Some(entry("b", false, "2024-01-02", false))
    );
    assert!(
        store
            .update_project(entry("b", false, "2024-01-02", true))
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_project(entry("c", false, "2024-01-02", true))
            .await
            .unwrap()
    );
    assert_eq!(
        store.registrations().await.unwrap(),
        [
            entry("a", true, "2025-06-01", true),
            entry("b", false, "2024-01-02", true)
        ]
    );
    assert!(store.unregister_project("a").await.unwrap());
    assert!(!store.unregister_project("a").await.unwrap());
    assert_eq!(store.registration("a").await.unwrap(), None);
    assert_eq!(store.registrations().await.unwrap().len(), 1);
    assert!(matches!(
        store
            .register_project(entry("x\0", true, "2025-01-01", true))
            .await,
        Err(crate::Error::InvalidArgument(_))
    ));
}
