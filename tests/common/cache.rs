//! Caches in front of the origin, as shipped under docker/cdn/: Varnish and
//! nginx, each on a loopback port of its own, stopped on drop.

use std::time::Duration;

pub struct Cache {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Cache {
    fn drop(&mut self) {
        // SIGTERM, so the master takes its workers down with it (SIGKILL
        // would leave nginx workers holding the port).
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    l.local_addr().expect("addr")
}

/// The shipped config with only its addresses changed.
pub fn shipped(path: &str, replace: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(
        concat!(env!("CARGO_MANIFEST_DIR"), "/docker/cdn/").to_string() + path,
    )
    .expect("shipped CDN config");
    for (from, to) in replace {
        assert!(text.contains(from), "{path} has no {from:?}");
        text = text.replace(from, to);
    }
    text
}

impl Cache {
    /// The shipped Varnish config in front of `origin`.
    pub fn varnish(origin: std::net::SocketAddr) -> Cache {
        let port = format!(".port = \"{}\";", origin.port());
        Cache::varnish_with(&shipped(
            "varnish/castline.vcl",
            &[(".port = \"8080\";", port)],
        ))
    }

    /// Varnish running `vcl`.
    pub fn varnish_with(vcl_text: &str) -> Cache {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_port();
        let vcl = dir.path().join("castline.vcl");
        std::fs::write(&vcl, vcl_text).expect("vcl");
        // varnishd reads its VCL after dropping root.
        let _ = std::process::Command::new("chmod")
            .arg("755")
            .arg(dir.path())
            .status();
        let work = dir.path().join("varnish");
        let child = std::process::Command::new("varnishd")
            .arg("-F")
            .args(["-a", &addr.to_string(), "-f"])
            .arg(&vcl)
            .arg("-n")
            .arg(&work)
            .args(["-s", "malloc,256m", "-p", "backend_idle_timeout=8"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("varnishd (Debian package varnish; make test installs it)");
        Cache::ready(Cache {
            child,
            addr,
            _dir: dir,
        })
    }

    pub fn nginx(origin: std::net::SocketAddr) -> Cache {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_port();
        let conf = dir.path().join("nginx.conf");
        let text = shipped(
            "nginx/castline-cache.conf",
            &[
                ("server 127.0.0.1:8080;", format!("server {origin};")),
                ("listen 127.0.0.1:8090;", format!("listen {addr};")),
            ],
        );
        std::fs::write(&conf, text).expect("nginx.conf");
        // Workers run unprivileged: the prefix (cache, temp files) must be theirs.
        let _ = std::process::Command::new("chmod")
            .arg("777")
            .arg(dir.path())
            .status();
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx; make test installs it)");
        Cache::ready(Cache {
            child,
            addr,
            _dir: dir,
        })
    }

    fn ready(mut c: Cache) -> Cache {
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(c.addr).is_err() {
            assert!(
                matches!(c.child.try_wait(), Ok(None)),
                "the cache exited at start"
            );
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the cache never listened"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }
}
