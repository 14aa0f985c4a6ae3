//! The API routes: repo info, refs, tree listings, paths-info.

use http::StatusCode;
use http::header;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::{
    Ctx, RepoRef, Resp, check_revision, entry_not_found, error, insert, json_response, open_repo,
};
use crate::repo::{Entry, RepoKind, Snapshot};
use crate::util::{iso8601, parse_query, query_value, truthy};

pub(super) async fn api_repo(ctx: &mut Ctx, repo: &RepoRef, rev: Option<&str>) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_revision(&snap, rev.unwrap_or("main")) {
        return r;
    }
    let blobs = truthy(query_value(&ctx.query, "blobs"));
    let siblings: Vec<Value> = snap
        .files
        .iter()
        .map(|(path, f)| {
            if !blobs {
                return json!({ "rfilename": path });
            }
            let mut v = json!({ "rfilename": path, "size": f.size, "blobId": f.oid });
            if let Some(lfs) = &f.lfs {
                v["lfs"] = json!({
                    "sha256": lfs.sha256,
                    "size": f.size,
                    "pointerSize": lfs.pointer_size,
                });
            }
            v
        })
        .collect();
    let id = repo.id();
    let modified = iso8601(snap.last_modified);
    let mut info = json!({
        "_id": hex::encode(&Sha1::digest(id.as_bytes())[..12]),
        "id": id,
        "author": repo.org,
        "sha": snap.commit,
        "lastModified": modified,
        "createdAt": modified,
        "private": false,
        "gated": if snap.gated { json!("manual") } else { json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": snap.files.values().map(|f| f.size).sum::<u64>(),
    });
    if repo.kind == RepoKind::Model {
        info["modelId"] = json!(repo.id());
    }
    let mut r = json_response(StatusCode::OK, &info);
    insert(&mut r, "x-repo-commit", &snap.commit);
    r
}

pub(super) async fn api_refs(ctx: &mut Ctx, repo: &RepoRef) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut refs = json!({
        "branches": [{ "name": "main", "ref": "refs/heads/main", "targetCommit": snap.commit }],
        "converts": [],
        "tags": [],
    });
    if truthy(query_value(&ctx.query, "include_prs")) {
        refs["pullRequests"] = json!([]);
    }
    json_response(StatusCode::OK, &refs)
}

fn entry_json(snap: &Snapshot, entry: &Entry<'_>, expand: bool) -> Value {
    let mut v = match entry {
        Entry::File(path, f) => {
            let mut v = json!({ "type": "file", "oid": f.oid, "size": f.size, "path": path });
            if let Some(lfs) = &f.lfs {
                v["lfs"] =
                    json!({ "oid": lfs.sha256, "size": f.size, "pointerSize": lfs.pointer_size });
            }
            v
        }
        Entry::Directory(path) => {
            json!({ "type": "directory", "oid": snap.tree_oid(path), "size": 0, "path": path })
        }
    };
    if expand {
        v["lastCommit"] = json!({
            "id": snap.commit,
            "title": "Upload folder",
            "date": iso8601(snap.last_modified),
        });
        if matches!(entry, Entry::File(..)) {
            v["securityFileStatus"] = json!({
                "status": "safe",
                "avScan": { "virusFound": false, "virusNames": null },
                "pickleImportScan": { "highestSafetyLevel": "innocuous", "imports": [] },
            });
        }
    }
    v
}

pub(super) async fn api_tree(ctx: &mut Ctx, repo: &RepoRef, rev: &str, path: &str) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_revision(&snap, rev) {
        return r;
    }
    let recursive = truthy(query_value(&ctx.query, "recursive"));
    let expand = truthy(query_value(&ctx.query, "expand"));
    let Some(entries) = snap.list(path, recursive) else {
        return entry_not_found(&snap, path);
    };
    let start = match query_value(&ctx.query, "cursor") {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n <= entries.len() => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    &format!("invalid cursor {c:?}"),
                );
            }
        },
    };
    let end = (start + ctx.shared.page_size).min(entries.len());
    let page: Vec<Value> = entries[start..end]
        .iter()
        .map(|e| entry_json(&snap, e, expand))
        .collect();
    let mut r = json_response(StatusCode::OK, &Value::Array(page));
    if end < entries.len() {
        // The next URL repeats every parameter but the cursor, as the real Hub's does.
        let mut params: Vec<&str> = ctx
            .raw_query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
            .collect();
        let cursor = format!("cursor={end}");
        params.push(&cursor);
        let next = format!("{}{}?{}", ctx.base_url(), ctx.raw_path, params.join("&"));
        insert(&mut r, "link", &format!("<{next}>; rel=\"next\""));
    }
    r
}

pub(super) async fn api_paths_info(ctx: &mut Ctx, repo: &RepoRef, rev: &str) -> Resp {
    let snap = match open_repo(ctx, repo).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_revision(&snap, rev) {
        return r;
    }
    let body = match ctx.read_body().await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let is_json = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (paths, expand) = if is_json {
        #[derive(serde::Deserialize)]
        struct PathsInfo {
            paths: Vec<String>,
            #[serde(default)]
            expand: bool,
        }
        match serde_json::from_slice::<PathsInfo>(&body) {
            Ok(p) => (p.paths, p.expand),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    None,
                    &format!("invalid JSON body: {e}"),
                );
            }
        }
    } else {
        let form = parse_query(&String::from_utf8_lossy(&body));
        let paths = form
            .iter()
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v.clone())
            .collect();
        (paths, truthy(query_value(&form, "expand")))
    };
    let mut seen = std::collections::HashSet::new();
    let entries: Vec<Value> = paths
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| seen.insert(p.to_owned()))
        .filter_map(|p| snap.entry(p))
        .map(|e| entry_json(&snap, &e, expand))
        .collect();
    json_response(StatusCode::OK, &Value::Array(entries))
}
