//! The dialog over the real client: a store in a local folder, an install
//! of 1.0.0, and the dialog's buttons clicked by label. "Install now"
//! downloads, verifies and switches to 1.1.0; "Skip this version" is saved in
//! the install's state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use updraft_client::{CheckOutcome, InstallRequest, Offer, UpdateManager};
use updraft_gui::{DialogOutcome, Language, ManagerBackend, UpdateDialog};
use updraft_test_support::{TestStore, write_app};

/// 1.0.0 installed from a local store that also holds 1.1.0, and the offer.
fn installed() -> (tempfile::TempDir, PathBuf, Arc<UpdateManager>, Offer) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    for version in ["1.0.0", "1.1.0"] {
        let source = dir.path().join(format!("src-{version}"));
        write_app(&source, version);
        store.publish_for_host(version, &source);
    }
    let install = dir.path().join("install");
    let (platform, arch) = updraft_client::host();
    let root = std::fs::read(store.store.join("metadata/1.root.json")).unwrap();
    let base = format!("file://{}", store.store.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let offer = runtime.block_on(async {
        let request = InstallRequest {
            install_dir: &install,
            base_url: &base,
            mirrors: &[],
            app: &"kuzflow".parse().unwrap(),
            channel: &"stable".parse().unwrap(),
            trusted_root: &root,
            version: Some(&"1.0.0".parse().unwrap()),
            platform,
            arch,
            allow_insecure_http: false,
        };
        updraft_client::bootstrap(&request, None).await.unwrap();
        let manager = UpdateManager::builder(&install).build().unwrap();
        let CheckOutcome::Available(offer) = manager.check().await.unwrap() else {
            panic!("1.1.0 is offered")
        };
        offer
    });
    let manager = Arc::new(UpdateManager::builder(&install).build().unwrap());
    (dir, install, manager, offer)
}

fn harness(manager: &Arc<UpdateManager>, offer: &Offer) -> Harness<'static, UpdateDialog> {
    harness_with(manager, offer, true)
}

fn harness_with(
    manager: &Arc<UpdateManager>,
    offer: &Offer,
    restarts: bool,
) -> Harness<'static, UpdateDialog> {
    let backend = ManagerBackend::new(Arc::clone(manager), offer.clone());
    let dialog = UpdateDialog::new(offer, backend, Language::English).restarts(restarts);
    let mut harness = Harness::builder()
        .with_size([560.0, 480.0])
        .build_ui_state(|ui, dialog: &mut UpdateDialog| dialog.ui(ui), dialog);
    harness.run();
    harness
}

/// Clicks "Install now" and steps the dialog until it shows `outcome` or a
/// failure (the install runs on its own thread, on its own time).
fn install_now(harness: &mut Harness<'static, UpdateDialog>, outcome: &str) {
    harness.get_by_label("Install now").click();
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.query_by_label(outcome).is_none()
        && harness
            .query_by_label_contains("The update failed")
            .is_none()
    {
        assert!(Instant::now() < deadline, "the install never finished");
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
    harness.run();
}

#[test]
fn install_now_installs_the_update_through_the_client() {
    let (_dir, install, manager, offer) = installed();
    let mut harness = harness(&manager, &offer);
    harness.get_by_label("Version 1.1.0 is available");
    install_now(
        &mut harness,
        "Update installed. The app will restart to finish the update.",
    );
    assert!(
        harness
            .query_by_label_contains("The update failed")
            .is_none(),
        "the install failed"
    );
    assert_eq!(
        std::fs::read_link(install.join("current")).unwrap(),
        std::path::Path::new("versions/1.1.0")
    );
    assert_eq!(
        std::fs::read_to_string(install.join("current/bin/app")).unwrap(),
        "#!/bin/sh\necho app 1.1.0\n"
    );
    harness.get_by_label("Restart now").click();
    harness.run();
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::Installed));
}

#[test]
fn skip_this_version_is_saved_in_the_install() {
    let (_dir, install, manager, offer) = installed();
    let mut harness = harness(&manager, &offer);
    harness.get_by_label("Skip this version").click();
    harness.run();
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::Skipped));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(install.join(".updraft/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["skipped"], serde_json::json!(["1.1.0"]));
    assert_eq!(
        std::fs::read_link(install.join("current")).unwrap(),
        std::path::Path::new("versions/1.0.0")
    );
}

#[test]
fn remind_me_later_snoozes_the_offer() {
    let (_dir, install, manager, offer) = installed();
    let mut harness = harness(&manager, &offer);
    harness.get_by_label("Remind me later").click();
    harness.run();
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::RemindLater));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fresh = UpdateManager::builder(&install).build().unwrap();
    let outcome = runtime.block_on(fresh.check()).unwrap();
    assert!(
        matches!(outcome, CheckOutcome::Snoozed(ref o) if o.version == "1.1.0"),
        "{outcome:?}"
    );
}

#[test]
fn without_an_app_to_restart_the_dialog_says_the_new_version_runs_next_time() {
    let (_dir, install, manager, offer) = installed();
    let mut harness = harness_with(&manager, &offer, false);
    install_now(
        &mut harness,
        "Update installed. The new version runs the next time the app starts.",
    );
    assert!(harness.query_by_label("Restart now").is_none());
    harness.get_by_label("Close").click();
    harness.run();
    assert_eq!(harness.state().outcome(), Some(DialogOutcome::Installed));
    assert_eq!(
        std::fs::read_link(install.join("current")).unwrap(),
        std::path::Path::new("versions/1.1.0")
    );
}
