//! A plugin that misbehaves when asked, to prove the host's sandbox: the query text picks
//! the behaviour. `ok` answers one row; `loop` spins forever; `panic` panics; `alloc`
//! allocates past any sane memory limit; `http <url>` fetches a URL (the connection's own
//! address is allowed, anything else is not); `print` writes to stdout and stderr;
//! `env`, `file` and `tcp` try to read the environment, a file, and to open a socket.

use plugboard_sdk::prelude::*;

struct Hostile {
    config: Config,
}

impl Connector for Hostile {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "hostile",
            "0.1.0",
            "Misbehaves on request (tests only)",
            &["hostile"],
        )
    }

    fn open(config: Config) -> Result<Self> {
        config.reject_unknown_options(&[])?;
        Ok(Hostile { config })
    }

    fn test(&self) -> Result<ServerInfo> {
        Ok(ServerInfo::new("hostile 0.1.0", 0.01, false))
    }

    fn query(&self, request: QueryRequest) -> Result<Box<dyn Rows>> {
        let (verb, argument) = request.sql.split_once(' ').unwrap_or((&request.sql, ""));
        let answer = match verb {
            "ok" => Value::Text("ok".into()),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "panic" => panic!("asked to panic"),
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "http" => {
                let client = plugboard_sdk::http::Client::new(argument)?;
                let response = client.get("/").send()?;
                Value::Int(response.status().into())
            }
            "target" => {
                let client = plugboard_sdk::http::Client::for_config(&self.config, 80, false)?;
                let response = client
                    .get(if argument.is_empty() { "/" } else { argument })
                    .send()?;
                Value::Text(response.text()?)
            }
            "print" => {
                println!("hostile says hello on stdout");
                eprintln!("hostile says hello on stderr");
                plugboard_sdk::log::warn("hostile says hello through the host log");
                Value::Text("printed".into())
            }
            "tcp" => match std::net::TcpStream::connect(argument) {
                Ok(_) => Value::Text("connected".into()),
                Err(e) => return Err(Error::Connection(format!("cannot open a socket: {e}"))),
            },
            "env" => Value::Text(
                std::env::vars()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            "file" => match std::fs::read_to_string(argument) {
                Ok(text) => Value::Text(text),
                Err(e) => return Err(Error::InvalidInput(format!("cannot read {argument}: {e}"))),
            },
            other => return Err(Error::InvalidInput(format!("unknown behaviour `{other}`"))),
        };
        let columns = vec![ColumnMeta::new("answer", "text", CommonType::Text)];
        Ok(Box::new(RowSet::new(columns, vec![vec![answer]])))
    }
}

export_connector!(Hostile);
