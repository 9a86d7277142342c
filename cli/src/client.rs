//! A client of a running daemon's control API.

use anyhow::{anyhow, bail, Context, Result};
use meshwork_node::home::ApiInfo;
use meshwork_node::Home;
use serde_json::Value;

pub(crate) struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// Finds the daemon of `home`, or explains how to start one.
    pub(crate) fn connect(home: &Home) -> Result<Self> {
        let no_daemon = || {
            anyhow!(
                "no meshwork daemon is running for {}; start one with `meshwork daemon` (or `meshwork up`) and try again",
                home.root().display()
            )
        };
        let ApiInfo { addr, token, .. } = home.read_api().ok_or_else(no_daemon)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let client = Self {
            base: format!("http://{addr}"),
            token,
            agent,
        };
        // A stale api.json (daemon killed) must not look like a live daemon.
        client.get("/v1/status").map_err(|_| no_daemon())?;
        Ok(client)
    }

    fn get_raw(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>> {
        self.agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .context("the daemon did not answer")
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        answer(self.get_raw(path)?)
    }

    /// [`Self::get`], read as the server's own answer type.
    pub(crate) fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        serde_json::from_value(self.get(path)?)
            .context("the daemon's answer is not what this CLI expects (is it the same version?)")
    }

    pub(crate) fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<Value> {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)
            .context("the daemon did not answer")?;
        answer(resp)
    }

    /// Posts a request whose answer streams progress lines, calling
    /// `on_progress(done, total)` for each, and returns the final result.
    pub(crate) fn post_progress(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        mut on_progress: impl FnMut(u64, u64),
    ) -> Result<Value> {
        use std::io::BufRead;
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)
            .context("the daemon did not answer")?;
        if !resp.status().is_success() {
            return answer(resp);
        }
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("the daemon's answer broke off")?;
            let v: Value = serde_json::from_str(&line).context("an answer that is not JSON")?;
            if let Some(p) = v.get("progress") {
                on_progress(
                    p["done"].as_u64().unwrap_or(0),
                    p["total"].as_u64().unwrap_or(0),
                );
            } else if let Some(ok) = v.get("ok") {
                return Ok(ok.clone());
            } else if let Some(msg) = v.get("error").and_then(Value::as_str) {
                bail!("{msg}");
            }
        }
        bail!("the daemon stopped before it finished (is it still running?)")
    }

    /// Follows a server-sent-events stream, calling `on_event` with each
    /// event's JSON until the daemon closes the stream or `on_event` returns
    /// `false`.
    pub(crate) fn follow(&self, path: &str, mut on_event: impl FnMut(Value) -> bool) -> Result<()> {
        use std::io::BufRead;
        let resp = self.get_raw(path)?;
        if !resp.status().is_success() {
            return answer(resp).map(drop);
        }
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("the event stream broke off")?;
            if let Some(data) = line.strip_prefix("data:") {
                if !on_event(
                    serde_json::from_str(data.trim()).context("an event that is not JSON")?,
                ) {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn answer(mut resp: ureq::http::Response<ureq::Body>) -> Result<Value> {
    let status = resp.status();
    let body: Value = resp
        .body_mut()
        .read_json()
        .with_context(|| format!("the daemon answered {status} with a body that is not JSON"))?;
    if status.is_success() {
        return Ok(body);
    }
    match body.get("error").and_then(Value::as_str) {
        Some(msg) => bail!("{msg}"),
        None => bail!("the daemon answered {status}"),
    }
}
