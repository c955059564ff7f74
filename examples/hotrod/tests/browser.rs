//! The web page in headless Chromium, driven over `WebDriver`: click a
//! customer, see the car, follow the trace link, see the timeline with all
//! six services. Leaves a screenshot in `target/hotrod-screenshot.png`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install -y chromium
//! chromium-driver`); fails, saying so, when they are missing. Set
//! `CHROMEDRIVER` to use another chromedriver binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, Hotrod};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

struct ChromeDriver(Child);

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn chromedriver_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMEDRIVER") {
        return PathBuf::from(p);
    }
    find_in_path("chromedriver").unwrap_or_else(|| {
        panic!(
            "chromedriver not found: this test drives headless Chromium and needs \
             `chromium` and `chromedriver` (Debian: `apt-get install -y chromium chromium-driver`), \
             or CHROMEDRIVER=/path/to/chromedriver"
        )
    })
}

async fn start_chromedriver() -> (ChromeDriver, String) {
    let binary = chromedriver_binary();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let driver = ChromeDriver(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client().get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                return (driver, url);
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(webdriver: &str, profile: &Path) -> Client {
    let mut options = json!({
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,1300",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let chromium = find_in_path("chromium").or_else(|| find_in_path("chromium-browser"));
    if let Some(bin) = chromium {
        options["binary"] = Value::from(bin.display().to_string());
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), Value::from("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("a Chromium session")
}

/// Polls `check` (a script returning a value) until it returns true.
async fn wait_until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if v == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let html = c.source().await.unwrap_or_default();
            panic!("timed out waiting for {what}; page:\n{html}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn target_dir() -> PathBuf {
    // target/<profile>/hotrod
    Path::new(env!("CARGO_BIN_EXE_hotrod"))
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_dispatches_a_car_and_links_to_its_trace() {
    let (_chromedriver, webdriver) = start_chromedriver().await;
    let hotrod = Hotrod::start(&["--fix-db-query-delay", "30ms"]).await;
    let profile = std::env::temp_dir().join(format!("hotrod-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let c = browser(&webdriver, &profile).await;

    let result = run(&c, &hotrod).await;
    // Always leave the artefact, pass or fail.
    if let Ok(png) = c.screenshot().await {
        let path = target_dir().join("hotrod-screenshot.png");
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
    let _ = c.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    result.unwrap();
}

async fn run(c: &Client, hotrod: &Hotrod) -> Result<(), String> {
    c.goto(&hotrod.url("/")).await.map_err(|e| e.to_string())?;
    let client_id = c
        .find(Locator::Css("#client-id"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        client_id.parse::<u32>().is_ok(),
        "web client id {client_id:?}"
    );

    c.find(Locator::Css("button[data-customer='123']"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    wait_until(
        c,
        "the dispatch result",
        "return !!document.querySelector('#log p.result .open-trace');",
    )
    .await;
    let line = c
        .find(Locator::Css("#log p.result"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    assert!(line.starts_with("HotROD T7"), "{line}");
    assert!(
        line.contains(" arriving in ") && line.contains(" min"),
        "{line}"
    );
    assert!(
        line.contains(&format!("[req: {client_id}-1, latency: ")),
        "{line}"
    );

    let href = c
        .find(Locator::Css("#log p.result a.open-trace"))
        .await
        .map_err(|e| e.to_string())?
        .attr("href")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no href")?;
    assert!(href.starts_with("/trace/"), "{href}");
    let trace_id = href.trim_start_matches("/trace/").to_owned();

    // The trace, drawn: all six services, every span of the dispatch.
    c.goto(&hotrod.url(&href))
        .await
        .map_err(|e| e.to_string())?;
    wait_until(
        c,
        "the timeline",
        "return document.querySelectorAll('#waterfall .span-row[data-service=\"route\"]').length === 10;",
    )
    .await;
    let services: Vec<String> = {
        let v = c
            .execute(
                "return Array.from(document.querySelectorAll('#legend .legend-item')).map(e => e.dataset.service);",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| e.to_string())?
    };
    let mut sorted = services.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["customer", "driver", "frontend", "mysql", "redis", "route"]
    );
    let summary = c
        .find(Locator::Css(".summary"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        summary.contains(&trace_id) && summary.contains("GET /dispatch"),
        "{summary}"
    );

    // A failed redis call is highlighted; its details say why.
    let failed = c
        .find(Locator::Css(
            "#waterfall .span-row.error[data-service='redis']",
        ))
        .await
        .map_err(|e| e.to_string())?;
    failed.click().await.map_err(|e| e.to_string())?;
    let detail = c
        .find(Locator::Css("#waterfall .detail"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        detail.contains("redis timeout") && detail.contains("param.driverID"),
        "{detail}"
    );
    // So does the mysql span, which saw the request's baggage.
    c.find(Locator::Css("#waterfall .span-row[data-service='mysql']"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    wait_until(
        c,
        "the mysql details",
        "return Array.from(document.querySelectorAll('#waterfall .detail')).some(d => d.textContent.includes('SELECT * FROM customer WHERE customer_id=123'));",
    )
    .await;
    // The critical path is drawn.
    let critical = c
        .execute(
            "return document.querySelectorAll('#waterfall .crit').length;",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        critical.as_u64().unwrap_or(0) >= 3,
        "critical path sections: {critical}"
    );

    // The search page finds it by driver.
    let driver = line
        .split_whitespace()
        .nth(1)
        .ok_or("no driver")?
        .to_owned();
    c.goto(&hotrod.url(&format!("/trace?service=frontend&tags=driver%3D{driver}")))
        .await
        .map_err(|e| e.to_string())?;
    wait_until(
        c,
        "the search result",
        &format!("return !!document.querySelector('tr.trace-row[data-trace-id=\"{trace_id}\"]');"),
    )
    .await;
    // Back to the timeline for the screenshot.
    c.goto(&hotrod.url(&href))
        .await
        .map_err(|e| e.to_string())?;
    wait_until(
        c,
        "the timeline",
        "return document.querySelectorAll('#waterfall .span-row').length > 30;",
    )
    .await;
    Ok(())
}
