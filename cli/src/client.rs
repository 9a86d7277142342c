//! A client of a running daemon's control API. Every answer is read as the
//! type the daemon serialises it from (the node's own types and
//! `meshwork_node::api::types`): a field renamed on one side is a compile
//! error on the other, not a `null` read at run time.

use anyhow::{anyhow, bail, Context, Result};
use meshwork_node::api::types::{ErrorBody, ProgressLine};
use meshwork_node::home::ApiInfo;
use meshwork_node::Home;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

pub(crate) struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// What an answer of the wrong shape means: the CLI and the daemon are
/// different builds.
const UNEXPECTED: &str =
    "the daemon's answer is not what this CLI expects (is it the same version?)";

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
        client
            .get::<IgnoredAny>("/v1/status")
            .map_err(|_| no_daemon())?;
        Ok(client)
    }

    fn get_raw(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>> {
        self.agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .context("the daemon did not answer")
    }

    fn post_raw(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        self.agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)
            .context("the daemon did not answer")
    }

    /// `GET path`, its answer read as `T`.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        answer(self.get_raw(path)?)
    }

    /// `POST path` with `body`, its answer read as `T`.
    pub(crate) fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        answer(self.post_raw(path, body)?)
    }

    /// [`Self::post`] for a command that needs only to know it was done.
    pub(crate) fn send(&self, path: &str, body: &impl Serialize) -> Result<()> {
        self.post::<IgnoredAny>(path, body).map(drop)
    }

    /// Posts a request whose answer streams progress lines, calling
    /// `on_progress(done, total)` for each, and returns the final result.
    pub(crate) fn post_progress<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        mut on_progress: impl FnMut(u64, u64),
    ) -> Result<T> {
        use std::io::BufRead;
        let resp = self.post_raw(path, body)?;
        if !resp.status().is_success() {
            return answer(resp);
        }
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("the daemon's answer broke off")?;
            match serde_json::from_str(&line).context(UNEXPECTED)? {
                ProgressLine::Progress(p) => on_progress(p.done, p.total),
                ProgressLine::Ok(v) => return Ok(v),
                ProgressLine::Error(why) => bail!("{why}"),
            }
        }
        bail!("the daemon stopped before it finished (is it still running?)")
    }

    /// Follows a server-sent-events stream, calling `on_event` with each
    /// event until the daemon closes the stream or `on_event` returns
    /// `false`.
    pub(crate) fn follow<T: DeserializeOwned>(
        &self,
        path: &str,
        mut on_event: impl FnMut(T) -> bool,
    ) -> Result<()> {
        use std::io::BufRead;
        let resp = self.get_raw(path)?;
        if !resp.status().is_success() {
            return answer::<IgnoredAny>(resp).map(drop);
        }
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("the event stream broke off")?;
            if let Some(data) = line.strip_prefix("data:") {
                if !on_event(serde_json::from_str(data.trim()).context(UNEXPECTED)?) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A successful answer as `T`; a refusal as the error it gives.
fn answer<T: DeserializeOwned>(mut resp: ureq::http::Response<ureq::Body>) -> Result<T> {
    let status = resp.status();
    if status.is_success() {
        return resp.body_mut().read_json().context(UNEXPECTED);
    }
    match resp.body_mut().read_json::<ErrorBody>() {
        Ok(refused) => bail!("{}", refused.error),
        Err(_) => bail!("the daemon answered {status}"),
    }
}
