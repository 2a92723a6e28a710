//! Behind a real reverse proxy: Debian's nginx in front of the real binary. Clients bind to
//! distinct loopback addresses (127.0.0.2, 127.0.0.3, …) so that nginx sees distinct peers;
//! the server trusts only 127.0.0.1, where nginx's upstream connections come from.
use std::{net::IpAddr, path::Path, time::Duration};

use crate::{deadline::eventually, nginx::Nginx, process::AppProcess};

/// Open live streams per client in these tests.
const STREAMS_PER_CLIENT: u32 = 2;

/// A client whose connections come from `127.0.0.<n>`.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap()
}

/// Opens the wall's live stream, saying it comes from `spoofed` (every client may say so),
/// and returns the response, which holds the stream open while it lives.
async fn open_wall_stream(
    client: &reqwest::Client,
    base: &str,
    spoofed: &str,
) -> reqwest::Response {
    client
        .get(format!("{base}/api/v1/wall/events"))
        .header("X-Forwarded-For", spoofed)
        .send()
        .await
        .unwrap()
}

async fn app_behind_proxy(dir: &Path) -> AppProcess {
    AppProcess::start(
        dir,
        0,
        &[
            ("AIWALL_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1"]"#.into()),
            (
                "AIWALL_LIMITS__SSE_PER_CLIENT",
                STREAMS_PER_CLIENT.to_string(),
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn behind_nginx_each_visitor_has_their_own_stream_limit() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_behind_proxy(dir.path()).await;
    let nginx = Nginx::start(&app.url).await;

    // Three visitors, each opening their quota: through nginx all are one TCP peer, 127.0.0.1,
    // which without trusted_proxies would refuse the third stream already.
    let mut open = Vec::new();
    for n in 2..=4 {
        let visitor = client_from(n);
        for i in 0..STREAMS_PER_CLIENT {
            let response = open_wall_stream(&visitor, &nginx.url, &format!("10.9.{n}.{i}")).await;
            assert_eq!(
                response.status(),
                200,
                "visitor 127.0.0.{n}, stream {i}: {}\nserver log:\n{}",
                response.text().await.unwrap_or_default(),
                app.log()
            );
            open.push(response);
        }
    }

    // One visitor past their own limit is refused, whatever X-Forwarded-For they send along
    // (nginx appends their real address, and the server reads the rightmost).
    let refused = open_wall_stream(&client_from(3), &nginx.url, "10.9.9.9").await;
    assert_eq!(refused.status(), 429, "{}", refused.text().await.unwrap());

    // Closing one of theirs frees a place for them.
    open.remove(2);
    let again = eventually(Duration::from_secs(5), "a freed stream slot", || async {
        let r = open_wall_stream(&client_from(3), &nginx.url, "10.9.9.9").await;
        (r.status() == 200).then_some(r)
    })
    .await;
    open.push(again);
}

#[tokio::test]
async fn a_direct_client_cannot_choose_its_address_with_forwarding_headers() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_behind_proxy(dir.path()).await;
    // 127.0.0.5 is not a trusted proxy: its X-Forwarded-For and Forwarded headers are ignored,
    // so a fresh made-up address on every request does not buy it more streams.
    let direct = client_from(5);
    let mut open = Vec::new();
    for i in 0..STREAMS_PER_CLIENT {
        let response = direct
            .get(format!("{}/api/v1/wall/events", app.url))
            .header("X-Forwarded-For", format!("203.0.113.{i}"))
            .header("Forwarded", format!("for=198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    let refused = direct
        .get(format!("{}/api/v1/wall/events", app.url))
        .header("X-Forwarded-For", "203.0.113.99")
        .header("Forwarded", "for=198.51.100.99")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        429,
        "a spoofed header let a direct client past its limit"
    );
    // Its neighbour on another address is not affected.
    let neighbour = open_wall_stream(&client_from(6), &app.url, "203.0.113.1").await;
    assert_eq!(neighbour.status(), 200);
}
