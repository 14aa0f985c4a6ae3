//! Repo info, refs, tree (with pagination) and paths-info.

use pipefetch_hub_server::fixture::random_bytes;
use pipefetch_hub_server::{HubServer, Route};

use crate::*;

#[tokio::test]
async fn model_info_lists_siblings() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    for url in [
        format!("{}/api/models/org/name", hub.url()),
        format!("{}/api/models/org/name/revision/main", hub.url()),
        format!("{}/api/models/org/name/revision/{commit}", hub.url()),
    ] {
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{url}");
        let v = r.json();
        assert_eq!(v["id"], "org/name");
        assert_eq!(v["sha"], commit.as_str());
        assert_eq!(v["private"], false);
        assert_eq!(v["gated"], false);
        assert!(v["lastModified"].as_str().unwrap().ends_with(".000Z"));
        let names: Vec<&str> = v["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rfilename"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                ".gitattributes",
                "config.json",
                SPECIAL,
                "unet/config.json",
                "unet/diffusion_pytorch_model.safetensors",
                "vae/diffusion_pytorch_model.bin",
            ]
        );
        assert!(v["siblings"][0].get("size").is_none());
    }
    let r = get(&format!("{}/api/models/org/name/revision/v9", hub.url())).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));
    let r = get(&format!("{}/api/models/org/nope", hub.url())).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    assert_eq!(hub.log().count(Route::ApiRepo), 5);
}

#[tokio::test]
async fn model_info_with_blobs() {
    let (_root, hub) = standard_server().await;
    let v = get(&format!("{}/api/models/org/name?blobs=True", hub.url()))
        .await
        .json();
    let config = &v["siblings"][1];
    assert_eq!(config["rfilename"], "config.json");
    assert_eq!(config["size"], CONFIG.len());
    assert_eq!(config["blobId"], git_blob_sha1(CONFIG));
    assert!(config.get("lfs").is_none());
    let weights = &v["siblings"][4];
    let content = random_bytes(1, 5000);
    let sha = sha256(&content);
    let pointer =
        format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize 5000\n");
    assert_eq!(weights["lfs"]["sha256"], sha.as_str());
    assert_eq!(weights["lfs"]["size"], 5000);
    assert_eq!(weights["lfs"]["pointerSize"], pointer.len());
    assert_eq!(weights["blobId"], git_blob_sha1(pointer.as_bytes()));
}

#[tokio::test]
async fn refs_name_main() {
    let (_root, hub) = standard_server().await;
    let commit = hub.commit("org/name").unwrap();
    let v = get(&format!("{}/api/models/org/name/refs", hub.url()))
        .await
        .json();
    assert_eq!(v["branches"][0]["name"], "main");
    assert_eq!(v["branches"][0]["targetCommit"], commit.as_str());
}

fn paths(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["path"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn tree_lists_one_level_or_everything() {
    let (_root, hub) = standard_server().await;
    let v = get(&format!("{}/api/models/org/name/tree/main", hub.url()))
        .await
        .json();
    assert_eq!(
        paths(&v),
        [
            "file:.gitattributes",
            "file:config.json",
            "directory:sub dir",
            "directory:unet",
            "directory:vae"
        ]
    );
    let dir = &v[2];
    assert_eq!(dir["size"], 0);
    assert_eq!(dir["oid"].as_str().unwrap().len(), 40);

    let v = get(&format!(
        "{}/api/models/org/name/tree/main?recursive=True&expand=False",
        hub.url()
    ))
    .await
    .json();
    assert_eq!(
        paths(&v),
        [
            "file:.gitattributes",
            "file:config.json",
            "directory:sub dir",
            &format!("file:{SPECIAL}"),
            "directory:unet",
            "file:unet/config.json",
            "file:unet/diffusion_pytorch_model.safetensors",
            "directory:vae",
            "file:vae/diffusion_pytorch_model.bin",
        ]
    );
    let weights = &v[6];
    let sha = sha256(&random_bytes(1, 5000));
    assert_eq!(weights["size"], 5000);
    assert_eq!(weights["lfs"]["oid"], sha.as_str());
    assert_eq!(weights["lfs"]["size"], 5000);
    let pointer =
        format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize 5000\n");
    assert_eq!(weights["lfs"]["pointerSize"], pointer.len());
    assert_eq!(v[1]["oid"], git_blob_sha1(CONFIG));
    assert!(v[1].get("lfs").is_none());

    // A subfolder, addressed with `%2F` like Python's `quote(path, safe="")`.
    let v = get(&format!(
        "{}/api/models/org/name/tree/main/unet?recursive=1",
        hub.url()
    ))
    .await
    .json();
    assert_eq!(
        paths(&v),
        [
            "file:unet/config.json",
            "file:unet/diffusion_pytorch_model.safetensors"
        ]
    );
    let v = get(&format!(
        "{}/api/models/org/name/tree/main/sub%20dir",
        hub.url()
    ))
    .await
    .json();
    assert_eq!(paths(&v), [format!("file:{SPECIAL}")]);
    let r = get(&format!("{}/api/models/org/name/tree/main/nope", hub.url())).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-error-code"), Some("EntryNotFound"));

    let v = get(&format!(
        "{}/api/models/org/name/tree/main?expand=true",
        hub.url()
    ))
    .await
    .json();
    assert_eq!(
        v[1]["lastCommit"]["id"],
        hub.commit("org/name").unwrap().as_str()
    );
    assert_eq!(v[1]["securityFileStatus"]["status"], "safe");
}

#[tokio::test]
async fn tree_pages_follow_link_headers() {
    let root = tempfile::tempdir().unwrap();
    standard_repo(root.path());
    let hub = HubServer::builder(root.path())
        .page_size(2)
        .start()
        .await
        .unwrap();
    let mut url = format!(
        "{}/api/models/org/name/tree/main?recursive=true&expand=false",
        hub.url()
    );
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(&url).await;
        assert_eq!(r.status, 200);
        let page = r.json();
        assert!(page.as_array().unwrap().len() <= 2);
        all.extend(paths(&page));
        pages += 1;
        let Some(link) = r.header("link") else { break };
        let next = link
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .expect("Link: <url>; rel=\"next\"");
        assert!(
            next.starts_with(&format!("{}/api/models/org/name/tree/main?", hub.url())),
            "{next}"
        );
        assert!(
            next.contains("recursive=true") && next.contains("expand=false"),
            "{next}"
        );
        url = next.to_owned();
    }
    assert_eq!(pages, 5);
    assert_eq!(all.len(), 9);
    assert_eq!(all[0], "file:.gitattributes");
    assert_eq!(all[8], "file:vae/diffusion_pytorch_model.bin");
    assert_eq!(hub.log().count(Route::ApiTree), 5);
    let r = get(&format!(
        "{}/api/models/org/name/tree/main?cursor=zz",
        hub.url()
    ))
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn paths_info_answers_known_paths() {
    let (_root, hub) = standard_server().await;
    let url = format!("{}/api/models/org/name/paths-info/main", hub.url());
    let form = "paths=config.json&paths=unet&paths=missing.txt&paths=sub+dir%2Ffile+name+%231+%C3%A9.txt&expand=False";
    let r = send(
        "POST",
        &url,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        paths(&r.json()),
        [
            "file:config.json",
            "directory:unet",
            &format!("file:{SPECIAL}")
        ]
    );
    let r = send(
        "POST",
        &url,
        &[("content-type", "application/json")],
        Some(br#"{"paths": ["unet/diffusion_pytorch_model.safetensors"]}"#),
    )
    .await;
    assert_eq!(r.json()[0]["lfs"]["size"], 5000);
    assert_eq!(get(&url).await.status, 405);
    assert_eq!(hub.log().count(Route::ApiPathsInfo), 3);
}
