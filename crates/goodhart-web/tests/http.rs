//! The API at the HTTP level: the happy path, and a clear 4xx for every bad input.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use goodhart_data::feedback::{Answer, Filter, LabelStore};
use goodhart_web::{router, ServeOptions, COOKIE, CSRF_HEADER, MAX_BODY};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::Fixture;

fn fixture(pairs: usize) -> Fixture {
    Fixture::new(pairs, ServeOptions::default())
}

impl Fixture {
    /// A request as our page sends it: session cookie, CSRF header, same origin.
    fn request(&self, method: &str, uri: &str, body: Option<Value>) -> Request<Body> {
        let mut r = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, format!("other=1; {COOKIE}={}", self.cookie))
            .header(CSRF_HEADER, &self.csrf);
        if method == "POST" {
            r = r.header(header::ORIGIN, "http://127.0.0.1:8080");
        }
        match body {
            Some(b) => r
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => r.body(Body::empty()).unwrap(),
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let (status, value, _) = self.respond(req).await;
        (status, value)
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.send(self.request(method, uri, body)).await
    }

    /// A request whose response must be `status` with an error message containing `needle`.
    async fn refused(&self, req: Request<Body>, status: StatusCode, needle: &str) {
        let (got, body) = self.send(req).await;
        let message = body["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(got, status, "{message}");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }

    fn live_labels(&self) -> usize {
        LabelStore::open_existing(&self.store)
            .unwrap()
            .comparisons(&Filter::default())
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn label_next_and_undo_round_trip() {
    let f = fixture(3);
    let (status, page) = f.call("GET", "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("/app.js"));
    let (status, me) = f.call("GET", "/api/me", None).await;
    assert_eq!(
        (status, me["user"].as_str()),
        (StatusCode::OK, Some("alice"))
    );

    let (_, next) = f.call("GET", "/api/next", None).await;
    let first = next["pair"]["id"].as_i64().unwrap();
    assert!(next["pair"]["a"]["svg"]
        .as_str()
        .unwrap()
        .contains(r#"class="frame""#));
    assert_eq!(next["progress"]["queued"], 3);
    let (status, done) = f
        .call(
            "POST",
            "/api/label",
            Some(json!({"pair": first, "answer": "b", "reason": "  A broke a vase  ", "seconds": 4.5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["progress"]["labelled"], 1);
    let (_, next) = f.call("GET", "/api/next", None).await;
    assert_ne!(next["pair"]["id"].as_i64().unwrap(), first);

    let (_, undone) = f.call("POST", "/api/undo", None).await;
    assert_eq!(undone["pair"].as_i64(), Some(first));
    let (_, again) = f
        .call("GET", &format!("/api/next?pair={first}"), None)
        .await;
    assert_eq!(again["pair"]["id"].as_i64(), Some(first));
    let (_, nothing) = f.call("POST", "/api/undo", None).await;
    assert!(nothing["pair"].is_null());

    f.call(
        "POST",
        "/api/label",
        Some(json!({"pair": first, "answer": "a"})),
    )
    .await;
    let store = LabelStore::open_existing(&f.store).unwrap();
    let labels = store.comparisons(&Filter::default()).unwrap();
    assert_eq!(labels.len(), 1);
    assert_eq!(
        (labels[0].labeler.as_str(), labels[0].answer),
        ("alice", Answer::A)
    );
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_tokens_work_once() {
    let f = fixture(1);
    let token = LabelStore::open_existing(&f.store)
        .unwrap()
        .add_user("bob")
        .unwrap();
    let sign_in = |token: &str| {
        Request::post("/api/signin")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"name": "bob", "token": token}).to_string(),
            ))
            .unwrap()
    };
    let res = router(f.app.clone())
        .oneshot(sign_in(&token))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("{COOKIE}=")));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    f.refused(sign_in(&token), StatusCode::UNAUTHORIZED, "works once")
        .await;
    f.refused(
        sign_in("guess"),
        StatusCode::UNAUTHORIZED,
        "unknown name or token",
    )
    .await;
}

#[tokio::test]
async fn every_bad_request_gets_a_clear_4xx_and_writes_nothing() {
    let f = fixture(2);
    let (_, next) = f.call("GET", "/api/next", None).await;
    let pair = next["pair"]["id"].as_i64().unwrap();
    let label = |extra: Value| {
        let mut body = json!({"pair": pair, "answer": "a"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };

    // Who: no session, a forged session, a missing or wrong CSRF token, another origin.
    let mut anonymous = f.request("POST", "/api/label", Some(label(json!({}))));
    anonymous.headers_mut().remove(header::COOKIE);
    f.refused(anonymous, StatusCode::UNAUTHORIZED, "sign in")
        .await;
    let mut forged = f.request("GET", "/api/next", None);
    forged.headers_mut().insert(
        header::COOKIE,
        format!("{COOKIE}=feedbeef").parse().unwrap(),
    );
    f.refused(forged, StatusCode::UNAUTHORIZED, "sign in").await;
    let mut no_csrf = f.request("POST", "/api/label", Some(label(json!({}))));
    no_csrf.headers_mut().remove(CSRF_HEADER);
    f.refused(no_csrf, StatusCode::FORBIDDEN, CSRF_HEADER).await;
    let mut wrong_csrf = f.request("POST", "/api/undo", None);
    wrong_csrf
        .headers_mut()
        .insert(CSRF_HEADER, "0123".parse().unwrap());
    f.refused(wrong_csrf, StatusCode::FORBIDDEN, CSRF_HEADER)
        .await;
    let mut cross = f.request("POST", "/api/label", Some(label(json!({}))));
    cross
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    f.refused(cross, StatusCode::FORBIDDEN, "cross-site").await;
    let mut fetch_cross = f.request("POST", "/api/undo", None);
    fetch_cross.headers_mut().remove(header::ORIGIN);
    fetch_cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    f.refused(fetch_cross, StatusCode::FORBIDDEN, "cross-site")
        .await;

    // What: malformed JSON, wrong content type, unknown answer or field, wrong types.
    let mut broken = f.request("POST", "/api/label", None);
    broken
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    *broken.body_mut() = Body::from("{\"pair\": ");
    f.refused(broken, StatusCode::BAD_REQUEST, "EOF").await;
    let mut form = f.request("POST", "/api/label", None);
    form.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    *form.body_mut() = Body::from("pair=1&answer=a");
    f.refused(form, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json")
        .await;
    for (body, needle) in [
        (label(json!({"answer": "maybe"})), "unknown variant `maybe`"),
        (label(json!({"extra": 1})), "unknown field `extra`"),
        (json!({"answer": "a"}), "missing field `pair`"),
        (label(json!({"pair": "one"})), "invalid type"),
        (label(json!({"seconds": -3})), "seconds"),
        (
            label(json!({"reason": "x".repeat(2001)})),
            "2001 characters",
        ),
    ] {
        let req = f.request("POST", "/api/label", Some(body));
        f.refused(req, StatusCode::UNPROCESSABLE_ENTITY, needle)
            .await;
    }
    let huge = label(json!({"reason": "x".repeat(MAX_BODY)}));
    f.refused(
        f.request("POST", "/api/label", Some(huge)),
        StatusCode::PAYLOAD_TOO_LARGE,
        "",
    )
    .await;

    // Which pair: unknown, then labelled twice.
    let unknown = f.request("POST", "/api/label", Some(label(json!({"pair": 999}))));
    f.refused(unknown, StatusCode::NOT_FOUND, "no queued pair 999")
        .await;
    f.refused(
        f.request("GET", "/api/next?pair=abc", None),
        StatusCode::BAD_REQUEST,
        "pair",
    )
    .await;
    f.refused(
        f.request("GET", "/nowhere", None),
        StatusCode::NOT_FOUND,
        "no such page",
    )
    .await;
    assert_eq!(f.live_labels(), 0, "nothing refused was written");

    let (status, _) = f.call("POST", "/api/label", Some(label(json!({})))).await;
    assert_eq!(status, StatusCode::OK);
    let twice = f.request("POST", "/api/label", Some(label(json!({"answer": "b"}))));
    f.refused(twice, StatusCode::CONFLICT, "already labelled")
        .await;
    assert_eq!(f.live_labels(), 1);
}

#[tokio::test]
async fn reviews_show_each_goals_rollouts_on_the_full_state_and_record_one_choice() {
    let f = fixture(1);
    common::queue_reviews(&f.store, 2);
    let (status, page) = f.call("GET", "/review", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("/review.js"));

    let (status, next) = f.call("GET", "/api/review/next", None).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["progress"], json!({"reviewed": 0, "queued": 2}));
    let review = &next["review"];
    let item = review["id"].as_i64().unwrap();
    let goals: Vec<&str> = review["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["goal"].as_str().unwrap())
        .collect();
    assert_eq!(
        goals,
        [
            "F at_goal",
            "F at_goal & G !vase_broken",
            "G !button_pressed"
        ]
    );
    // Rollouts are drawn on the full state (the map's two panels), not the camera's frames.
    let svg = review["candidates"][1]["rollouts"][0]["svg"]
        .as_str()
        .unwrap();
    assert!(
        svg.contains("<svg") && !svg.contains("class=\"frame\""),
        "{svg}"
    );

    let choose = |chosen: usize| json!({"item": item, "chosen": chosen, "reason": "no vases"});
    f.refused(
        f.request("POST", "/api/review", Some(choose(3))),
        StatusCode::UNPROCESSABLE_ENTITY,
        "no candidate at position 3",
    )
    .await;
    f.refused(
        f.request(
            "POST",
            "/api/review",
            Some(json!({"item": 99, "chosen": 0})),
        ),
        StatusCode::NOT_FOUND,
        "no queued review 99",
    )
    .await;
    let mut no_csrf = f.request("POST", "/api/review", Some(choose(1)));
    no_csrf.headers_mut().remove(CSRF_HEADER);
    f.refused(no_csrf, StatusCode::FORBIDDEN, CSRF_HEADER).await;
    let (status, done) = f.call("POST", "/api/review", Some(choose(1))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["progress"]["reviewed"], 1);
    f.refused(
        f.request("POST", "/api/review", Some(choose(0))),
        StatusCode::CONFLICT,
        "already done review",
    )
    .await;
    let (_, next) = f.call("GET", "/api/review/next", None).await;
    assert_ne!(next["review"]["id"].as_i64(), Some(item));

    let store = LabelStore::open_existing(&f.store).unwrap();
    assert_eq!(
        store.reviews().unwrap(),
        [(
            "alice".to_string(),
            item,
            "F at_goal & G !vase_broken".to_string(),
            1
        )]
    );
}
