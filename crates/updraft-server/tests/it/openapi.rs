//! `/openapi.json` is the contract: real answers are validated against it,
//! and requests generated from it (valid, empty, missing and random values)
//! never get a 5xx or an answer the document does not describe.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Running, TOKEN, config, publish_with, temp};

/// The small part of JSON Schema (2020-12) the document uses.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: unsupported $ref {reference}"))?;
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: $ref {reference} names no schema"));
        }
        return validate(doc, target, value, at);
    }
    if let Some(types) = match &schema["type"] {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => Some(many.iter().filter_map(Value::as_str).collect()),
        _ => None,
    } {
        let fits = types.iter().any(|t| match *t {
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => false,
        });
        if !fits {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| length < min) {
            return Err(format!(
                "{at}: {value} is shorter than {}",
                schema["minLength"]
            ));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
            return Err(format!(
                "{at}: {value:.40} is longer than {}",
                schema["maxLength"]
            ));
        }
        if schema["format"] == "date-time"
            && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            return Err(format!("{at}: {value} is not an RFC 3339 date-time"));
        }
    }
    if let Some(number) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| number < min) {
            return Err(format!("{at}: {value} is below {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|max| number > max) {
            return Err(format!("{at}: {value} is above {}", schema["maximum"]));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}: `{name}` is missing from {value}"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                if let Some(field) = object.get(name) {
                    validate(doc, property, field, &format!("{at}.{name}"))?;
                }
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (index, item) in items.iter().enumerate() {
            validate(doc, &schema["items"], item, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

/// The documented path template `path` falls under: the one matching with
/// the most literal segments (as the router picks), else the store fallback.
fn template_of<'a>(doc: &'a Value, path: &str) -> &'a str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|t| *t != "/{store_path}")
        .filter_map(|template| {
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            let matches = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()));
            let literal = parts.iter().filter(|p| !p.starts_with('{')).count();
            matches.then_some((literal, template.as_str()))
        })
        .max()
        .map_or("/{store_path}", |(_, template)| template)
}

/// Checks one real answer against the document; returns the operation's key.
fn check_answer(
    doc: &Value,
    method: &Method,
    path: &str,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<(String, String), String> {
    let template = template_of(doc, path);
    let operation = &doc["paths"][template][method.as_str().to_lowercase()];
    let what = format!("{method} {path} -> {status}");
    if operation.is_null() {
        return Err(format!("{what}: {template} documents no {method}"));
    }
    let answer = &operation["responses"][status.to_string()];
    if answer.is_null() {
        return Err(format!(
            "{what}: status not documented ({}): {}",
            template,
            String::from_utf8_lossy(body)
        ));
    }
    if let Some(schema) = answer["content"]["application/json"].get("schema") {
        if !content_type.starts_with("application/json") {
            return Err(format!(
                "{what}: content-type {content_type}, documented JSON"
            ));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| format!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
        validate(doc, schema, &value, &what)?;
    }
    Ok((template.to_owned(), method.as_str().to_owned()))
}

async fn send(
    server: &Running,
    doc: &Value,
    request: reqwest::RequestBuilder,
) -> Result<(String, String, u16), String> {
    let request = request.build().map_err(|e| e.to_string())?;
    let (method, path) = (request.method().clone(), request.url().path().to_owned());
    let response = server
        .client
        .execute(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status >= 500 {
        return Err(format!("{method} {path}: {status}"));
    }
    let (template, method) = check_answer(doc, &method, &path, status, &content_type, &body)?;
    Ok((template, method, status))
}

async fn started() -> (tempfile::TempDir, Running, Value) {
    let (dir, store) = temp();
    publish_with(&store, "1.0.0", |_| {});
    publish_with(&store, "1.1.0", |r| {
        r.min_supported_version = Some("0.5.0".parse().unwrap());
    });
    let server = Running::start(config(&store)).await;
    let (status, doc) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    (dir, server, doc)
}

/// Real answers of every documented operation, and most of their statuses,
/// match the document; every documented operation exists.
#[tokio::test(flavor = "multi_thread")]
async fn real_answers_match_the_openapi_document() {
    let (_dir, server, doc) = started().await;
    let client = &server.client;
    let url = |path: &str| server.url(path);
    let admin = |method: Method, path: &str| client.request(method, url(path)).bearer_auth(TOKEN);
    let package = "/releases/v1.1.0/kuzflow_v1.1.0_linux_x86_64_full.tar.zst";
    let q = "platform=linux&arch=x86_64";
    let requests = vec![
        client.get(url(&format!("/api/version/check?current_version=1.0.0&{q}"))),
        client.get(url(&format!("/api/version/check?current_version=1.1.0&{q}"))),
        client.get(url(&format!("/api/version/check?current_version=&{q}"))),
        client.get(url(&format!("/api/version/check?current_version=1.0.0&{q}&app=nope"))),
        client.post(url("/api/version/check")).json(&json!({"current_version": "1.0.0", "platform": "linux", "arch": "x86_64", "user_id": "u"})),
        client.post(url("/api/version/check")).body("{not json"),
        client.post(url("/api/version/check")).body("x".repeat(70 * 1024)),
        client.get(url(&format!("/api/version/info?version=1.1.0&{q}"))),
        client.get(url(&format!("/api/version/info?version=x&{q}"))),
        client.get(url(&format!("/api/version/info?version=9.9.9&{q}"))),
        client.get(url(&format!("/api/version/download?version=1.1.0&{q}"))),
        client.get(url(&format!("/api/version/download?version=1.1.0&{q}"))).header("range", "bytes=0-9"),
        client.get(url(&format!("/api/version/download?version=1.1.0&{q}"))).header("range", "bytes=999999999-"),
        client.get(url(&format!("/api/version/download?version=9.9.9&{q}"))),
        client.post(url("/api/version/report")).json(&json!({"version": "1.1.0", "platform": "linux", "arch": "x86_64", "outcome": "installed"})),
        client.post(url("/api/version/report")).json(&json!({"version": "1.1.0", "platform": "linux", "arch": "x86_64", "outcome": "exploded"})),
        client.get(url("/healthz")),
        client.get(url("/metrics")),
        client.get(url("/openapi.json")),
        client.get(url("/api/admin/releases")),
        admin(Method::GET, "/api/admin/releases"),
        admin(Method::GET, "/api/admin/audit"),
        admin(Method::POST, "/api/admin/releases/kuzflow/1.1.0/rollout").json(&json!({"percent": 50})),
        admin(Method::POST, "/api/admin/releases/kuzflow/1.1.0/rollout").json(&json!({"percent": 500})),
        admin(Method::POST, "/api/admin/releases/kuzflow/1.1.0/explode"),
        admin(Method::POST, "/api/admin/releases/kuzflow/not-a-version/halt"),
        admin(Method::DELETE, "/api/admin/releases/kuzflow/1.1.0/override"),
        admin(Method::DELETE, "/api/admin/releases/kuzflow/9.9.9/override"),
        client.delete(url("/api/admin/releases/kuzflow/1.1.0/override")),
        client.get(url("/changelog/kuzflow")),
        client.get(url("/changelog/nope")),
        client.get(url("/changelog/Bad%20App")),
        client.get(url("/feeds/kuzflow/stable.atom")),
        client.get(url("/feeds/kuzflow/stable.rss")),
        client.get(url("/feeds/kuzflow/Bad%20Channel.atom")),
        client.get(url("/metadata/timestamp.json")),
        client.get(url(package)).header("range", "bytes=-10"),
        client.get(url(package)).header("range", "bytes=999999999-"),
        client.get(url("/metadata/nothing.json")),
        client.get(url("/.updraft/server.sqlite")),
        admin(Method::POST, "/api/admin/releases/kuzflow/1.1.0/yank"),
        client.get(url(&format!("/api/version/download?version=1.1.0&{q}"))),
    ];
    let mut seen = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    for request in requests {
        let (template, method, status) = send(&server, &doc, request).await.unwrap();
        statuses.insert(status);
        seen.insert((template, method));
    }
    // 304 needs the ETag of a first answer.
    let response = client.get(url("/metadata/root.json")).send().await.unwrap();
    let etag = response.headers()["etag"].clone();
    let (_, _, status) = send(
        &server,
        &doc,
        client
            .get(url("/metadata/root.json"))
            .header("if-none-match", etag),
    )
    .await
    .unwrap();
    assert_eq!(status, 304);
    for expected in [200, 202, 206, 400, 401, 404, 410, 413, 416] {
        assert!(
            statuses.contains(&expected),
            "no {expected} was exercised: {statuses:?}"
        );
    }
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(template, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(|method| (template.clone(), method.to_uppercase()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(seen, documented, "every documented operation was called");
    server.stop().await;
}

fn pick(n: usize, runner: &mut TestRunner) -> usize {
    (0..n).new_tree(runner).unwrap().current()
}

/// Left out, empty, random, or (most often) one of the documented choices.
fn generated(choices: &[String], runner: &mut TestRunner) -> Option<String> {
    match pick(8, runner) {
        0 => None,
        1 => Some(String::new()),
        2 => Some("\\PC{0,16}".new_tree(runner).unwrap().current()),
        _ if choices.is_empty() => Some("\\PC{0,16}".new_tree(runner).unwrap().current()),
        _ => Some(choices[pick(choices.len(), runner)].clone()),
    }
}

/// Generated requests: for every operation, parameters and bodies built from
/// the document's schemas and examples, or left out, empty, or random.
/// Bounded: a fixed number of cases per operation and a time budget.
#[tokio::test(flavor = "multi_thread")]
async fn requests_generated_from_the_openapi_document_get_documented_answers() {
    const CASES: usize = 40;
    const BUDGET: Duration = Duration::from_secs(40);
    let (_dir, server, doc) = started().await;
    let mut runner = TestRunner::deterministic();
    let random = "\\PC{0,16}";
    let started_at = Instant::now();
    let mut sent = 0usize;
    let mut statuses = BTreeSet::new();
    let paths = doc["paths"].as_object().unwrap().clone();
    // Example values by name, to fill bodies.
    let mut examples: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for operations in paths.values() {
        for operation in operations.as_object().unwrap().values() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let values = parameter["examples"].as_array().into_iter().flatten();
                examples
                    .entry(parameter["name"].as_str().unwrap().to_owned())
                    .or_default()
                    .extend(values.filter_map(Value::as_str).map(str::to_owned));
            }
        }
    }
    'all: for (template, operations) in &paths {
        for (method, operation) in operations.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            for _ in 0..CASES {
                if started_at.elapsed() > BUDGET {
                    break 'all;
                }
                let value_for =
                    |name: &str, schema: &Value, own: &[Value], runner: &mut TestRunner| {
                        let mut choices: Vec<String> = own
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect();
                        choices.extend(examples.get(name).cloned().unwrap_or_default());
                        choices.extend(
                            schema["enum"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(str::to_owned),
                        );
                        generated(&choices, runner)
                    };
                let mut path = template.clone();
                let mut query = Vec::new();
                let mut headers = Vec::new();
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = parameter["name"].as_str().unwrap();
                    let own = parameter["examples"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let value = value_for(name, &parameter["schema"], &own, &mut runner);
                    match parameter["in"].as_str().unwrap() {
                        "path" => {
                            let value = value
                                .filter(|v| !v.is_empty())
                                .unwrap_or_else(|| "x".into());
                            let encoded = if name == "store_path" {
                                value
                                    .split('/')
                                    .map(|s| {
                                        percent_encoding::utf8_percent_encode(
                                            s,
                                            percent_encoding::NON_ALPHANUMERIC,
                                        )
                                        .to_string()
                                    })
                                    .collect::<Vec<_>>()
                                    .join("/")
                            } else {
                                percent_encoding::utf8_percent_encode(
                                    &value,
                                    percent_encoding::NON_ALPHANUMERIC,
                                )
                                .to_string()
                            };
                            path = path.replace(&format!("{{{name}}}"), &encoded);
                        }
                        "query" => {
                            if let Some(value) = value {
                                query.push((name.to_owned(), value));
                            }
                        }
                        "header" => {
                            if let Some(value) =
                                value.filter(|v| v.is_ascii() && !v.chars().any(char::is_control))
                            {
                                headers.push((name.to_owned(), value));
                            }
                        }
                        other => panic!("parameter in {other}"),
                    }
                }
                let mut url = server.url(&path);
                if !query.is_empty() {
                    url = format!("{url}?{}", serde_urlencoded::to_string(&query).unwrap());
                }
                let mut request = server.client.request(method.clone(), &url);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                if operation.get("security").is_some() {
                    request = match pick(4, &mut runner) {
                        0 => request,
                        1 => request.header("authorization", "Bearer wrong-token-0123456789"),
                        _ => request.bearer_auth(TOKEN),
                    };
                }
                if let Some(body) = operation.get("requestBody") {
                    let mut schema = body["content"]["application/json"]["schema"].clone();
                    if let Some(reference) = schema["$ref"].as_str() {
                        schema = doc["components"]["schemas"]
                            [reference.rsplit('/').next().unwrap()]
                        .clone();
                    }
                    request = match pick(5, &mut runner) {
                        0 => request,
                        1 => request.body(random.new_tree(&mut runner).unwrap().current()),
                        2 => request.json(&json!([1, {"percent": "x"}])),
                        _ => {
                            let mut object = serde_json::Map::new();
                            for (name, property) in
                                schema["properties"].as_object().into_iter().flatten()
                            {
                                if property["type"] == "integer" {
                                    let choices = [
                                        json!(0),
                                        json!(37),
                                        json!(100),
                                        json!(101),
                                        json!(-1),
                                        json!("ten"),
                                    ];
                                    object.insert(
                                        name.clone(),
                                        choices[pick(choices.len(), &mut runner)].clone(),
                                    );
                                } else if let Some(value) =
                                    value_for(name, property, &[], &mut runner)
                                {
                                    object.insert(name.clone(), value.into());
                                }
                            }
                            request.json(&object)
                        }
                    };
                }
                sent += 1;
                match send(&server, &doc, request).await {
                    Ok((_, _, status)) => {
                        statuses.insert(status);
                    }
                    Err(problem) => panic!("{problem}"),
                }
            }
        }
    }
    assert!(sent >= 200, "only {sent} requests within the budget");
    for expected in [200, 202, 400, 401, 404] {
        assert!(
            statuses.contains(&expected),
            "no {expected} among {statuses:?}"
        );
    }
    assert_eq!(server.get_json("/healthz").await.0, 200);
    server.stop().await;
}
