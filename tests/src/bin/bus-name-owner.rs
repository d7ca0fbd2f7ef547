//! A Type=dbus test service: after a delay, takes a name on the system bus
//! (DBUS_SYSTEM_BUS_ADDRESS or the default socket), then runs until killed.
//!
//! Usage: bus-name-owner NAME DELAY_MS

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: bus-name-owner NAME DELAY_MS");
    let delay: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(delay));
    let conn = zbus::blocking::connection::Builder::system()
        .and_then(|b| b.name(name.as_str()))
        .and_then(|b| b.build());
    match conn {
        Ok(_conn) => {
            println!("bus-name-owner: owns {name}");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Err(e) => {
            println!("bus-name-owner: cannot own {name}: {e}");
            std::process::exit(1);
        }
    }
}
