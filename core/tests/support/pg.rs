//! A PostgreSQL database of its own per test, on the server `.ci/run` starts (127.0.0.1:5432,
//! role `shardgate` with password `shardgate` and CREATEDB; `SHARDGATE_TEST_POSTGRES` names
//! another as `host=… port=… user=…`, `SHARDGATE_TEST_POSTGRES_PASSWORD` its password): made
//! fresh, dropped after. `None`, with the reason printed, when there is no server.
#![allow(dead_code, clippy::unwrap_used)]

use super::TempDir;

pub struct PgDb {
    pub name: String,
    server: String,
    password: String,
    /// Holds the password file the gateway reads.
    pub dir: TempDir,
}

fn server() -> (String, String) {
    let s = std::env::var("SHARDGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=shardgate".into());
    let p =
        std::env::var("SHARDGATE_TEST_POSTGRES_PASSWORD").unwrap_or_else(|_| "shardgate".into());
    (s, p)
}

fn connect(server: &str, password: &str, db: &str) -> Result<postgres::Client, postgres::Error> {
    let info = format!("{server} password={password} dbname={db} connect_timeout=2");
    postgres::Client::connect(&info, postgres::NoTls)
}

impl PgDb {
    /// A new empty database named after `tag`.
    pub fn create(tag: &str) -> Option<PgDb> {
        let (server, password) = server();
        let mut c = match connect(&server, &password, "postgres") {
            Ok(c) => c,
            Err(e) => {
                println!(
                    "skipped the PostgreSQL run: no server at `{server}` ({e}); .ci/run starts one"
                );
                return None;
            }
        };
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("sg_{tag}_{}_{n}", std::process::id());
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let dir = TempDir::new();
        std::fs::write(dir.0.join("pg.password"), format!("{password}\n")).unwrap();
        Some(PgDb {
            name,
            server,
            password,
            dir,
        })
    }

    /// The `[management]` lines of a gateway keeping its catalogue here.
    pub fn management(&self) -> String {
        format!(
            "store = \"postgres\"\npostgres = \"{} dbname={}\"\npassword_file = \"{}\"\n",
            self.server,
            self.name,
            self.dir.0.join("pg.password").display()
        )
    }

    /// A connection of the test's own to it.
    pub fn client(&self) -> postgres::Client {
        connect(&self.server, &self.password, &self.name).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = connect(&self.server, &self.password, "postgres") {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
