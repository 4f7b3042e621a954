//! `/openapi.json`: an OpenAPI 3.1 description of every endpoint.

use serde_json::{Value, json};

fn query(name: &str, required: bool, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "description": description, "schema": {"type": "string"}})
}

fn error_responses() -> Value {
    json!({
        "400": {"description": "A parameter or the body is invalid; the message names it.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "404": {"description": "No such app or release.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    })
}

fn merge(mut base: Value, extra: &Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            base.insert(key.clone(), value.clone());
        }
    }
    base
}

/// The document.
pub(crate) fn document() -> Value {
    let check_params = vec![
        query(
            "current_version",
            true,
            "The installed version (SemVer 2.0).",
        ),
        query(
            "platform",
            true,
            "linux, windows or macos (aliases accepted).",
        ),
        query("arch", true, "x86_64, aarch64 or x86 (aliases accepted)."),
        query(
            "app",
            false,
            "The app id; defaults to the server's only app.",
        ),
        query(
            "channel",
            false,
            "stable (default), beta or another channel; a non-stable client also sees stable.",
        ),
        query(
            "install_id",
            false,
            "A stable random id of the install, for staged rollout.",
        ),
    ];
    let release_params = vec![
        query("version", true, "The release version."),
        query("platform", true, "Platform."),
        query("arch", true, "Architecture."),
        query(
            "app",
            false,
            "The app id; defaults to the server's only app.",
        ),
    ];
    let bearer = json!([{"bearer": []}]);
    let admin_change = json!({
        "summary": "Change a release's rollout for dynamic checks (persisted and audited).",
        "security": bearer,
        "parameters": [
            {"name": "app", "in": "path", "required": true, "schema": {"type": "string"}},
            {"name": "version", "in": "path", "required": true, "schema": {"type": "string"}},
            {"name": "action", "in": "path", "required": true, "schema": {"type": "string", "enum": ["rollout", "halt", "resume", "yank", "restore"]}}
        ],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"percent": {"type": "integer", "minimum": 0, "maximum": 100}}}}}},
        "responses": {"200": {"description": "The new override and its audit entry."}, "401": {"description": "Missing or wrong token."}}
    });
    json!({
        "openapi": "3.1.0",
        "info": {"title": "updraft update server", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Offers signed releases. Clients verify every byte against the TUF metadata served under /metadata/."},
        "paths": {
            "/api/version/check": {
                "get": {"summary": "Is there an update for this install?", "parameters": check_params,
                        "responses": merge(json!({"200": {"description": "The offer, or {\"update_available\": false}.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Check"}}}}}), &error_responses())},
                "post": {"summary": "The same check with a JSON body (which may also carry user_id).",
                         "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CheckRequest"}}}},
                         "responses": merge(json!({"200": {"description": "As GET.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Check"}}}}}), &error_responses())}
            },
            "/api/version/info": {"get": {"summary": "One release's details.", "parameters": release_params.clone(), "responses": merge(json!({"200": {"description": "The release."}}), &error_responses())}},
            "/api/version/download": {"get": {"summary": "The release package, with Range, If-Range and ETag.", "parameters": release_params,
                "responses": merge(json!({"200": {"description": "The package; Content-Disposition names it {app}_v{version}_{platform}_{arch}.{ext}."}, "206": {"description": "A byte range."}, "410": {"description": "The release was yanked."}, "416": {"description": "The range is outside the file."}}), &error_responses())}},
            "/api/version/report": {"post": {"summary": "An install's outcome.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["version", "platform", "arch", "outcome"],
                    "properties": {"app": {"type": "string"}, "version": {"type": "string"}, "platform": {"type": "string"}, "arch": {"type": "string"}, "channel": {"type": "string"},
                                   "outcome": {"type": "string", "enum": ["installed", "failed", "rolled_back"]}, "error": {"type": "string", "maxLength": 4096}}}}}},
                "responses": merge(json!({"202": {"description": "Recorded."}}), &error_responses())}},
            "/healthz": {"get": {"summary": "Liveness and the targets version served.", "responses": {"200": {"description": "OK"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics.", "responses": {"200": {"description": "Text exposition format."}}}},
            "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": {"description": "OpenAPI 3.1."}}}},
            "/api/admin/releases": {"get": {"summary": "Every release with its rollout state and counters.", "security": bearer, "responses": {"200": {"description": "Releases."}, "401": {"description": "Missing or wrong token."}}}},
            "/api/admin/audit": {"get": {"summary": "Admin changes, newest first.", "security": bearer, "responses": {"200": {"description": "Audit log."}, "401": {"description": "Missing or wrong token."}}}},
            "/api/admin/releases/{app}/{version}/{action}": {"post": admin_change},
            "/api/admin/releases/{app}/{version}/override": {"delete": {"summary": "Clear the override: the signed settings apply again.", "security": bearer, "responses": {"200": {"description": "Cleared."}, "401": {"description": "Missing or wrong token."}}}},
            "/{store_path}": {"get": {"summary": "A file of the signed store (metadata, packages, manifests), with Range, ETag and Cache-Control.",
                "parameters": [{"name": "store_path", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "The file."}, "206": {"description": "A byte range."}, "304": {"description": "Not modified."}, "404": {"description": "No such file."}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "CheckRequest": {"type": "object", "required": ["current_version", "platform", "arch"], "properties": {
                    "current_version": {"type": "string"}, "platform": {"type": "string"}, "arch": {"type": "string"}, "app": {"type": "string"},
                    "channel": {"type": "string"}, "install_id": {"type": "string"}, "user_id": {"type": "string"}}},
                "Check": {"type": "object", "required": ["update_available"], "properties": {
                    "update_available": {"type": "boolean"}, "current_version": {"type": "string"}, "latest_version": {"type": "string"},
                    "update_type": {"type": "string", "enum": ["major", "minor", "patch"]}, "force_update": {"type": "boolean"},
                    "download_url": {"type": "string"}, "file_size": {"type": "integer"}, "changelog": {"type": "string"},
                    "release_date": {"type": "string", "format": "date-time"}, "min_supported_version": {"type": "string"},
                    "changelogs": {"type": "array", "items": {"type": "object", "properties": {"version": {"type": "string"}, "notes": {"type": "string"}}}},
                    "app": {"type": "string"}, "channel": {"type": "string"}, "target": {"type": "string"}, "sha256": {"type": "string"}}}
            }
        }
    })
}
