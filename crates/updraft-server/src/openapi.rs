//! `/openapi.json`: an OpenAPI 3.1 description of every endpoint, with every
//! answer each one can give. `tests/it/openapi.rs` checks real answers
//! against it and fuzzes the server with requests generated from it.

use serde_json::{Value, json};

fn query(name: &str, required: bool, description: &str, examples: &[&str]) -> Value {
    // A required parameter that is empty counts as missing (400).
    let schema = if required {
        json!({"type": "string", "minLength": 1})
    } else {
        json!({"type": "string"})
    };
    json!({"name": name, "in": "query", "required": required, "description": description,
           "schema": schema, "examples": examples})
}

fn path_parameter(name: &str, description: &str, schema: &Value, examples: &[&str]) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": schema, "examples": examples})
}

fn range_header() -> Value {
    json!({"name": "Range", "in": "header", "required": false,
           "description": "One byte range (RFC 9110); anything else is ignored.",
           "schema": {"type": "string"}, "examples": ["bytes=0-99", "bytes=100-", "bytes=-10", "bytes=999999999-"]})
}

fn json_body(schema: &Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}})
}

/// Error answers, each `{"error": "..."}`, for the given status codes.
fn errors(codes: &[u16]) -> Value {
    let mut out = serde_json::Map::new();
    for code in codes {
        let description = match code {
            400 => "A parameter or the body is invalid; the message names it.",
            401 => {
                "The admin token or the request signature is missing or wrong (answered slower after repeated failures)."
            }
            404 => "No such app, release, action or file (or the admin API is off).",
            408 => "No answer within the request deadline.",
            410 => "The release was withdrawn (yanked).",
            413 => "The body is larger than the limit (64 KiB by default).",
            416 => "The range starts past the end of the file.",
            503 => "The database is unavailable (checks are still answered); try again shortly.",
            _ => "An error.",
        };
        let mut answer = json_body(&json!({"$ref": "#/components/schemas/Error"}));
        answer["description"] = description.into();
        out.insert(code.to_string(), answer);
    }
    Value::Object(out)
}

/// `{"200": ...}` (or another success code) with a JSON body of `schema`.
fn ok_with(code: u16, description: &str, schema: &Value) -> Value {
    let mut answer = json_body(schema);
    answer["description"] = description.into();
    json!({ code.to_string(): answer })
}

fn ok(description: &str, schema: &Value) -> Value {
    ok_with(200, description, schema)
}

fn merge(mut base: Value, extra: &Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            base.insert(key.clone(), value.clone());
        }
    }
    base
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn file_answers() -> Value {
    merge(
        json!({
            "200": {"description": "The file.", "content": {"application/octet-stream": {}}},
            "206": {"description": "A byte range.", "content": {"application/octet-stream": {}}},
            "304": {"description": "Not modified (If-None-Match)."}
        }),
        &errors(&[400, 404, 408, 416]),
    )
}

/// The document.
pub(crate) fn document() -> Value {
    let platforms = ["linux", "windows", "macos", "darwin", "win32"];
    let arches = ["x86_64", "aarch64", "x86", "amd64", "arm64"];
    let check_params = vec![
        query(
            "current_version",
            true,
            "The installed version (SemVer 2.0).",
            &["1.0.0", "0.9.0", "2.0.0-beta.1"],
        ),
        query(
            "platform",
            true,
            "linux, windows or macos (aliases accepted).",
            &platforms,
        ),
        query(
            "arch",
            true,
            "x86_64, aarch64 or x86 (aliases accepted).",
            &arches,
        ),
        query(
            "app",
            false,
            "The app id; defaults to the server's only app.",
            &["kuzflow"],
        ),
        query(
            "channel",
            false,
            "stable (default), beta or another channel; a non-stable client also sees stable.",
            &["stable", "beta"],
        ),
        query(
            "install_id",
            false,
            "A stable random id of the install (at most 128 printable characters), for staged rollout.",
            &["3f2a9c", "install-1"],
        ),
    ];
    let release_params = vec![
        query("version", true, "The release version.", &["1.0.0", "1.1.0"]),
        query("platform", true, "Platform.", &platforms),
        query("arch", true, "Architecture.", &arches),
        query(
            "app",
            false,
            "The app id; defaults to the server's only app.",
            &["kuzflow"],
        ),
    ];
    let mut download_params = release_params.clone();
    download_params.push(query(
        "from",
        false,
        "The installed version: serve the signed patch from it instead (404 when there is none).",
        &["1.0.0"],
    ));
    download_params.push(range_header());
    let bearer = json!([{"bearer": []}, {"hmac": []}]);
    let release_path = [
        path_parameter(
            "app",
            "The app id.",
            &json!({"type": "string", "minLength": 1}),
            &["kuzflow"],
        ),
        path_parameter(
            "version",
            "The release version.",
            &json!({"type": "string", "minLength": 1}),
            &["1.0.0", "1.1.0"],
        ),
    ];
    let admin_change = json!({
        "summary": "Change a release's rollout for dynamic checks (persisted and audited).",
        "security": bearer,
        "parameters": [
            release_path[0], release_path[1],
            path_parameter("action", "What to do.", &json!({"type": "string", "enum": ["rollout", "halt", "resume", "yank", "restore"]}), &["rollout", "halt", "resume", "yank", "restore"])
        ],
        "requestBody": {"required": false, "description": "`rollout` needs {\"percent\": N}; the other actions ignore the body.",
                        "content": {"application/json": {"schema": {"type": "object", "properties": {"percent": {"type": "integer", "minimum": 0, "maximum": 100}}}}}},
        "responses": merge(ok("The new override and its audit entry.", &schema("AdminChange")), &errors(&[400, 401, 404, 408, 413, 503]))
    });
    let admin_clear = json!({
        "summary": "Clear the override: the signed settings apply again.",
        "security": bearer,
        "parameters": release_path,
        "responses": merge(ok("Cleared (`override` is null).", &schema("AdminChange")), &errors(&[400, 401, 404, 408, 503]))
    });
    json!({
        "openapi": "3.1.0",
        "info": {"title": "updraft update server", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Offers signed releases. Clients verify every byte against the TUF metadata served under /metadata/. Every error answer is {\"error\": \"...\"}; a method a path does not support gets 405 with an Allow header."},
        "paths": {
            "/api/version/check": {
                "get": {"summary": "Is there an update for this install?", "parameters": check_params,
                        "responses": merge(ok("The offer, or update_available false with the other fields null.", &schema("Check")), &errors(&[400, 404, 408]))},
                "post": {"summary": "The same check with a JSON body (which may also carry user_id).",
                         "requestBody": {"required": true, "content": {"application/json": {"schema": schema("CheckRequest")}}},
                         "responses": merge(ok("As GET.", &schema("Check")), &errors(&[400, 404, 408, 413]))}
            },
            "/api/version/info": {"get": {"summary": "One release's details.", "parameters": release_params,
                "responses": merge(ok("The release.", &schema("Info")), &errors(&[400, 404, 408]))}},
            "/api/version/download": {"get": {"summary": "The release package, with Range, If-Range and ETag; Content-Disposition names it {app}_v{version}_{platform}_{arch}.{ext}.", "parameters": download_params,
                "responses": merge(file_answers(), &errors(&[410]))}},
            "/api/version/report": {"post": {"summary": "An install's outcome. May be signed (the `hmac` scheme: X-Updraft-Key-Id, X-Updraft-Timestamp, X-Updraft-Nonce, X-Updraft-Signature); must be when the server runs with --require-signed-reports.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["version", "platform", "arch", "outcome"],
                    "properties": {"app": {"type": "string"}, "version": {"type": "string", "minLength": 1}, "platform": {"type": "string", "minLength": 1}, "arch": {"type": "string", "minLength": 1}, "channel": {"type": "string"},
                                   "outcome": {"type": "string", "enum": ["installed", "failed", "rolled_back"]}, "error": {"type": "string", "maxLength": 4096}}}}}},
                "responses": merge(ok_with(202, "Recorded.", &json!({"type": "object", "required": ["recorded"], "properties": {"recorded": {"type": "boolean"}}})), &errors(&[400, 401, 404, 408, 413]))}},
            "/healthz": {"get": {"summary": "Liveness, the targets version served, and whether the database answers (checks are served either way).",
                "responses": ok("OK.", &json!({"type": "object", "required": ["status", "targets_version", "releases", "database"], "properties": {"status": {"type": "string", "enum": ["ok"]}, "targets_version": {"type": "integer", "minimum": 0}, "releases": {"type": "integer", "minimum": 0}, "database": {"type": "string", "enum": ["up", "down"]}}}))}},
            "/metrics": {"get": {"summary": "Prometheus metrics.", "responses": {"200": {"description": "Text exposition format.", "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "This document.", "responses": ok("OpenAPI 3.1.", &json!({"type": "object", "required": ["openapi", "paths"]}))}},
            "/api/admin/releases": {"get": {"summary": "Every release with its rollout state and counters.", "security": bearer,
                "responses": merge(ok("Releases.", &json!({"type": "object", "required": ["targets_version", "releases"], "properties": {"targets_version": {"type": "integer"}, "releases": {"type": "array", "items": {"type": "object", "required": ["app", "version", "rollout_percent", "halted", "yanked", "override", "counts"]}}}})), &errors(&[401, 404, 408, 503]))}},
            "/api/admin/audit": {"get": {"summary": "Admin changes, newest first.", "security": bearer,
                "responses": merge(ok("Audit log.", &json!({"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array", "items": schema("AuditEntry")}}})), &errors(&[401, 404, 408, 503]))}},
            "/api/admin/releases/{app}/{version}/{action}": {"post": admin_change},
            "/api/admin/releases/{app}/{version}/override": {"delete": admin_clear},
            "/changelog/{app}": {"get": {"summary": "Release notes of every release of the app (Markdown rendered, raw HTML shown as text), newest first, per channel; yanked releases left out. `publish` writes the same page into the store as `changelog/{app}/index.html`.",
                "parameters": [path_parameter("app", "The app id.", &json!({"type": "string"}), &["kuzflow", "nope", "Bad App"])],
                "responses": merge(json!({"200": {"description": "An HTML page.", "content": {"text/html": {}}}}), &errors(&[400, 404, 408]))}},
            "/feeds/{app}/{file}": {"get": {"summary": "An Atom 1.0 feed of the channel's releases (`{channel}.atom`), newest first. `publish` writes the same feed into the store as `feeds/{app}/{channel}.atom` with relative links.",
                "parameters": [path_parameter("app", "The app id.", &json!({"type": "string"}), &["kuzflow", "nope"]),
                               path_parameter("file", "`{channel}.atom`.", &json!({"type": "string"}), &["stable.atom", "beta.atom", "stable.rss", "Bad Channel.atom"])],
                "responses": merge(json!({"200": {"description": "An Atom feed.", "content": {"application/atom+xml": {}}}}), &errors(&[400, 404, 408]))}},
            "/{store_path}": {"get": {"summary": "A file of the signed store (metadata, packages, manifests), with Range, ETag and Cache-Control. Symbolic links and `.updraft/` are never served.",
                "parameters": [
                    path_parameter("store_path", "A path inside the store.", &json!({"type": "string", "minLength": 1}), &["metadata/timestamp.json", "metadata/root.json", "metadata/1.root.json", "metadata/versions.json", "releases/v1.0.0/kuzflow_v1.0.0_linux_x86_64_full.tar.zst", ".updraft/server.sqlite", "metadata/../../etc/passwd"]),
                    range_header()
                ],
                "responses": file_answers()}}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "The scheme name is case-insensitive."},
                "hmac": {"type": "apiKey", "in": "header", "name": "X-Updraft-Signature",
                         "description": "HMAC-SHA256 over the canonical request, with X-Updraft-Key-Id, X-Updraft-Timestamp (Unix seconds, within 300 s) and X-Updraft-Nonce (single use); see docs/server.md, Signed requests."}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string", "minLength": 1}}},
                "CheckRequest": {"type": "object", "required": ["current_version", "platform", "arch"], "properties": {
                    "current_version": {"type": "string", "minLength": 1}, "platform": {"type": "string", "minLength": 1}, "arch": {"type": "string", "minLength": 1}, "app": {"type": "string"},
                    "channel": {"type": "string"}, "install_id": {"type": "string", "maxLength": 128}, "user_id": {"type": "string", "maxLength": 128}}},
                "Check": {"type": "object",
                    "required": ["current_version", "latest_version", "update_available", "update_type", "force_update", "download_url", "file_size", "changelog", "release_date", "min_supported_version"],
                    "properties": {
                    "update_available": {"type": "boolean"}, "current_version": {"type": "string"}, "latest_version": {"type": ["string", "null"]},
                    "update_type": {"type": ["string", "null"], "enum": ["major", "minor", "patch", null]}, "force_update": {"type": "boolean"},
                    "download_url": {"type": ["string", "null"]}, "file_size": {"type": ["integer", "null"], "minimum": 0}, "changelog": {"type": ["string", "null"]},
                    "release_date": {"type": ["string", "null"], "format": "date-time"}, "min_supported_version": {"type": ["string", "null"]},
                    "changelogs": {"type": "array", "items": {"type": "object", "required": ["version", "notes"], "properties": {"version": {"type": "string"}, "notes": {"type": "string"}}}},
                    "app": {"type": "string"}, "channel": {"type": "string"}, "target": {"type": "string"}, "sha256": {"type": "string"},
                    "patch_url": {"type": "string"}, "patch_size": {"type": "integer", "minimum": 0}, "patch_from": {"type": "string"}, "patch_target": {"type": "string"},
                    "download_path": {"type": "string", "enum": ["delta", "chain", "full"]}, "download_size": {"type": "integer", "minimum": 0}}},
                "Info": {"type": "object", "required": ["app", "version", "channel", "platform", "arch", "release_date", "file_size", "target", "download_url", "force_update", "rollout_percent", "halted", "yanked"],
                    "properties": {"app": {"type": "string"}, "version": {"type": "string"}, "channel": {"type": "string"}, "platform": {"type": "string"}, "arch": {"type": "string"},
                        "release_date": {"type": "string"}, "changelog": {"type": "string"}, "file_size": {"type": "integer", "minimum": 0}, "sha256": {"type": ["string", "null"]},
                        "target": {"type": "string"}, "download_url": {"type": "string"}, "main": {"type": "string"},
                        "force_update": {"type": "boolean"}, "min_supported_version": {"type": ["string", "null"]},
                        "rollout_percent": {"type": "integer", "minimum": 0, "maximum": 100}, "halted": {"type": "boolean"}, "yanked": {"type": "boolean"}}},
                "Override": {"type": ["object", "null"], "properties": {"rollout_percent": {"type": "integer", "minimum": 0, "maximum": 100}, "halted": {"type": "boolean"}, "yanked": {"type": "boolean"}}},
                "AuditEntry": {"type": "object", "required": ["at", "who", "action", "app", "version"], "properties": {
                    "at": {"type": "string", "format": "date-time"}, "who": {"type": "string"}, "action": {"type": "string"}, "app": {"type": "string"}, "version": {"type": "string"}}},
                "AdminChange": {"type": "object", "required": ["app", "version", "override", "audit"], "properties": {
                    "app": {"type": "string"}, "version": {"type": "string"}, "override": schema("Override"), "audit": schema("AuditEntry"),
                    "signed_targets_version": {"type": ["integer", "null"], "description": "The targets version the change was signed into (server started with the targets key), else null."}}}
            }
        }
    })
}
