//! Typed errors from the Hub's real error answers (`X-Error-Code`, status, messages), with hints.

use pipefetch_hub_client::{Error, HfEnv, HubClient, Repo, Token, TokenSource};

use crate::raw_server::{RawServer, Step, head};
use crate::{builder, guard};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A server answering every request with `status` and these headers (no body: HEAD).
async fn answering(status: &'static str, headers: Vec<(&'static str, &'static str)>) -> RawServer {
    RawServer::start(move |_, _| {
        let mut h = headers.clone();
        h.push(("content-length", "0"));
        vec![Step::Write(head(status, &h))]
    })
    .await
}

async fn head_error(server: &RawServer, token: Option<Token>) -> Error {
    let client = builder(&server.url()).token(token).build().unwrap();
    guard(client.file_metadata(
        &Repo::model("org/name").unwrap(),
        "main",
        "unet/config.json",
    ))
    .await
    .unwrap_err()
}

#[tokio::test]
async fn repo_not_found_without_token() {
    let server = answering(
        "401 Unauthorized",
        vec![
            ("x-error-code", "RepoNotFound"),
            ("x-error-message", "Repository not found"),
            ("x-request-id", "Root=1-abc"),
        ],
    )
    .await;
    let err = head_error(&server, None).await;
    assert!(
        matches!(
            err,
            Error::RepoNotFound {
                authenticated: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "repository org/name was not found on the Hub, or it is private (request id Root=1-abc)"
    );
    assert_eq!(
        err.hint().unwrap(),
        "check the repository id; if it is private, set HF_TOKEN or pass --token"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn repo_not_found_with_token() {
    let server = answering("404 Not Found", vec![("x-error-code", "RepoNotFound")]).await;
    let err = head_error(&server, Some(Token::new("hf_valid_but_no_access"))).await;
    assert!(matches!(
        err,
        Error::RepoNotFound {
            authenticated: true,
            ..
        }
    ));
    assert_eq!(
        err.hint().unwrap(),
        "check the repository id, and that the token's account has access to it"
    );
}

#[tokio::test]
async fn gated_without_and_with_token() {
    let server = answering(
        "401 Unauthorized",
        vec![
            ("x-error-code", "GatedRepo"),
            ("x-error-message", "Access to model org/name is restricted."),
        ],
    )
    .await;
    let err = head_error(&server, None).await;
    assert_eq!(
        err.to_string(),
        "repository org/name is gated: a token is required"
    );
    assert_eq!(
        err.hint().unwrap(),
        format!(
            "accept the conditions at {}/org/name and set HF_TOKEN (or pass --token) with a token of that account",
            server.url()
        )
    );

    let server = answering("403 Forbidden", vec![("x-error-code", "GatedRepo")]).await;
    let err = head_error(&server, Some(Token::new("hf_finegrained_token"))).await;
    let Error::GatedRepo {
        url,
        authenticated: true,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(url, &format!("{}/org/name", server.url()));
    assert_eq!(
        err.to_string(),
        "repository org/name is gated: the token has no access to it"
    );
    assert!(err.hint().unwrap().starts_with(&format!(
        "accept the conditions at {}/org/name and use a token of that account",
        server.url()
    )));
}

#[tokio::test]
async fn invalid_token_names_its_source() {
    let server = answering(
        "401 Unauthorized",
        vec![(
            "x-error-message",
            "Invalid credentials in Authorization header",
        )],
    )
    .await;
    let env = HfEnv::from_vars(|k| match k {
        "HF_TOKEN" => Some("hf_expired_token_123".into()),
        "HF_ENDPOINT" => Some(server.url()),
        _ => None,
    });
    assert_eq!(
        env.token.as_ref().unwrap().source(),
        &TokenSource::EnvVar("HF_TOKEN")
    );
    let client = HubClient::builder_from_env(&env)
        .retry(pipefetch_hub_client::RetryPolicy::no_delay())
        .build()
        .unwrap();
    let err = guard(client.file_metadata(&Repo::model("org/name").unwrap(), "main", "f"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the Hub rejected the token from $HF_TOKEN: invalid credentials (HTTP 401 on {}/org/name/resolve/main/f)",
            server.url()
        )
    );
    assert_eq!(
        err.hint().unwrap(),
        "the token in $HF_TOKEN is invalid or expired: replace it (https://huggingface.co/settings/tokens) or unset it"
    );
    // The secret never shows up in messages.
    assert!(!format!("{err:?}").contains("hf_expired_token_123"));
}

#[tokio::test]
async fn revision_and_entry_not_found() {
    let server = answering(
        "404 Not Found",
        vec![
            ("x-error-code", "RevisionNotFound"),
            ("x-error-message", "Invalid rev id: nope"),
        ],
    )
    .await;
    let client = builder(&server.url()).build().unwrap();
    let err = guard(client.file_metadata(&Repo::model("org/name").unwrap(), "nope", "f"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "revision \"nope\" was not found in repository org/name"
    );

    let server = answering(
        "404 Not Found",
        vec![
            ("x-error-code", "EntryNotFound"),
            ("x-error-message", "Entry not found"),
            ("x-repo-commit", COMMIT),
        ],
    )
    .await;
    let err = head_error(&server, None).await;
    let Error::EntryNotFound { commit, path, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(commit.as_deref(), Some(COMMIT));
    assert_eq!(path, "unet/config.json");
    assert_eq!(
        err.to_string(),
        format!(
            "\"unet/config.json\" was not found in repository org/name at revision \"main\" (commit {COMMIT})"
        )
    );
}

#[tokio::test]
async fn json_error_bodies_give_the_message() {
    let server = RawServer::start(|_, _| {
        crate::raw_server::reply(
            "400 Bad Request",
            &[
                ("x-request-id", "r-9"),
                ("content-type", "application/json"),
            ],
            br#"{"error":"Invalid path"}"#,
        )
    })
    .await;
    let client = builder(&server.url()).build().unwrap();
    let err = guard(client.list_tree(&Repo::model("org/name").unwrap(), "main", None, true))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "HTTP 400 from {}/api/models/org/name/tree/main?recursive=true: Invalid path (request id r-9)",
            server.url()
        )
    );
}

#[tokio::test]
async fn disabled_repo() {
    let server = answering(
        "403 Forbidden",
        vec![("x-error-message", "Access to this resource is disabled.")],
    )
    .await;
    let err = head_error(&server, None).await;
    assert_eq!(
        err.to_string(),
        "repository org/name is disabled on the Hub"
    );
}
