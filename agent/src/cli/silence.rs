//! `lookout silence add|list|expire`: silences of a running agent, through its API.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

/// Where the running agent is, and the API token if it asks for one.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The agent's address.
    #[arg(
        long,
        global = true,
        env = "LOOKOUT_URL",
        default_value = "http://127.0.0.1:9469"
    )]
    pub url: String,
    /// File holding the API token (agent.api_token_file of the agent).
    #[arg(long, global = true, value_name = "FILE", env = "LOOKOUT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// `lookout silence ...`
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Create a silence; prints its id.
    Add {
        /// A matcher, `label=pattern` (the pattern is a regex matching the whole value;
        /// `alert` is the alert's name). Repeat for more; all must match.
        #[arg(long = "match", value_name = "LABEL=PATTERN", required = true)]
        matchers: Vec<String>,
        /// How long from its start, e.g. `2h` (or --until).
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
        duration: Option<String>,
        /// When it ends, RFC 3339 (or --for).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// When it starts, RFC 3339; default now.
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Who; default the user running the command.
        #[arg(long)]
        author: Option<String>,
    },
    /// List the silences (expired ones for a day after they end).
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        /// Its id (from `add` or `list`).
        id: String,
    },
}

/// Runs a `silence` command against the agent at `target`.
pub fn execute(command: SilenceCommand, target: &Target) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(command, target)) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "lookout silence: {message}");
    ExitCode::from(1)
}

async fn run(command: SilenceCommand, target: &Target) -> Result<String, String> {
    let client = Client::new(target)?;
    match command {
        SilenceCommand::Add {
            matchers,
            duration,
            until,
            start,
            comment,
            author,
        } => {
            let mut map = serde_json::Map::new();
            for m in &matchers {
                let (label, pattern) = m
                    .split_once('=')
                    .ok_or_else(|| format!("--match {m:?}: expected LABEL=PATTERN"))?;
                map.insert(label.trim().to_string(), json!(pattern));
            }
            if duration.is_none() && until.is_none() {
                return Err("say how long: --for DURATION or --until TIME".into());
            }
            let author = author
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_default();
            let body = json!({
                "matchers": map, "duration": duration, "ends": until, "starts": start,
                "comment": comment, "created_by": author,
            });
            let answer = client
                .send(reqwest::Method::POST, "/api/v1/silences", Some(body))
                .await?;
            let id = answer["id"].as_str().unwrap_or_default();
            let mut text = format!("{id}\n");
            if answer["persisted"] == json!(false) {
                text.push_str(&format!(
                    "warning: {}\n",
                    answer["error"].as_str().unwrap_or("not saved")
                ));
            }
            Ok(text)
        }
        SilenceCommand::List { json: as_json } => {
            let mut all: Vec<Value> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(a) => format!("/api/v1/silences?limit=500&after={a}"),
                    None => "/api/v1/silences?limit=500".to_string(),
                };
                let page = client.send(reqwest::Method::GET, &path, None).await?;
                all.extend(page["silences"].as_array().cloned().unwrap_or_default());
                match page["next"].as_str() {
                    Some(next) => after = Some(next.to_string()),
                    None => break,
                }
            }
            if as_json {
                return Ok(format!("{}\n", json!({ "silences": all })));
            }
            let mut text = format!(
                "{:<18} {:<8} {:<26} {:<6} MATCHERS / COMMENT\n",
                "ID", "STATE", "ENDS", "SOURCE"
            );
            for s in &all {
                let matchers: Vec<String> = s["matchers"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                text.push_str(&format!(
                    "{:<18} {:<8} {:<26} {:<6} {} {}\n",
                    s["id"].as_str().unwrap_or_default(),
                    s["state"].as_str().unwrap_or_default(),
                    s["ends"].as_str().unwrap_or_default(),
                    s["source"].as_str().unwrap_or_default(),
                    matchers.join(","),
                    s["comment"].as_str().unwrap_or_default(),
                ));
            }
            Ok(text)
        }
        SilenceCommand::Expire { id } => {
            let path = format!("/api/v1/silences/{}", encode(&id));
            client.send(reqwest::Method::DELETE, &path, None).await?;
            Ok(format!("{id} expired\n"))
        }
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(target: &Target) -> Result<Client, String> {
        let token = match &target.token_file {
            None => None,
            Some(path) => Some(
                crate::config::secret::read_secret_file(path)
                    .map_err(|e| format!("--token-file {}: {e}", path.display()))?,
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client {
            http,
            base: target.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{}: {e}", crate::config::secret::redact_url(&url)))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            let why = value["error"].as_str().unwrap_or("no reason given");
            Err(format!("the agent answered {status}: {why}"))
        }
    }
}
