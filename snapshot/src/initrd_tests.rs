use super::*;
use std::os::unix::fs::symlink;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relive-initrd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A sysfs with a virtio disk (vda, 254:0) on a PCI function, each
/// with its driver's module, and a device-mapper volume (253:0).
fn sysfs(root: &Path) -> PathBuf {
    let sys = root.join("sys");
    let function = sys.join("devices/pci0000:00/0000:00:04.0");
    let virtio = function.join("virtio1");
    std::fs::create_dir_all(virtio.join("block/vda")).unwrap();
    std::fs::create_dir_all(sys.join("devices/virtual/block/dm-0")).unwrap();
    for (driver, module) in [
        ("pci/drivers/virtio-pci", "virtio_pci"),
        ("virtio/drivers/virtio_blk", "virtio_blk"),
    ] {
        std::fs::create_dir_all(sys.join("bus").join(driver)).unwrap();
        std::fs::create_dir_all(sys.join("module").join(module)).unwrap();
        symlink(
            sys.join("module").join(module),
            sys.join("bus").join(driver).join("module"),
        )
        .unwrap();
    }
    symlink(
        sys.join("bus/pci/drivers/virtio-pci"),
        function.join("driver"),
    )
    .unwrap();
    symlink(
        sys.join("bus/virtio/drivers/virtio_blk"),
        virtio.join("driver"),
    )
    .unwrap();
    std::fs::create_dir_all(sys.join("dev/block")).unwrap();
    symlink(virtio.join("block/vda"), sys.join("dev/block/254:0")).unwrap();
    symlink(
        sys.join("devices/virtual/block/dm-0"),
        sys.join("dev/block/253:0"),
    )
    .unwrap();
    // eth0 on a virtio device with virtio_net; lo has no device.
    let nic = sys.join("devices/pci0000:00/0000:00:03.0/virtio0");
    std::fs::create_dir_all(nic.join("net/eth0")).unwrap();
    let net_driver = sys.join("bus/virtio/drivers/virtio_net");
    std::fs::create_dir_all(&net_driver).unwrap();
    std::fs::create_dir_all(sys.join("module/virtio_net")).unwrap();
    symlink(sys.join("module/virtio_net"), net_driver.join("module")).unwrap();
    symlink(&net_driver, nic.join("driver")).unwrap();
    std::fs::create_dir_all(sys.join("class/net/lo")).unwrap();
    symlink(nic.join("net/eth0"), sys.join("class/net/eth0")).unwrap();
    symlink(&nic, nic.join("net/eth0/device")).unwrap();
    sys
}

const MODULES_DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
";

#[test]
fn the_root_disk_s_drivers_are_found_up_its_devices() {
    let sys = sysfs(&temp("drivers"));
    assert_eq!(
        drivers_of(&sys, (254, 0)).unwrap(),
        ["virtio_blk", "virtio_pci"]
    );
    let e = drivers_of(&sys, (253, 0)).unwrap_err();
    assert!(e.to_string().contains("is virtual"), "{e}");
    assert_eq!(network_drivers(&sys), ["virtio_net"]);
}

#[test]
fn modules_come_after_their_dependencies_built_in_ones_skipped() {
    let wanted = [
        "virtio_blk".to_owned(),
        "virtio_pci".to_owned(),
        "ext4".to_owned(),
    ];
    let files = resolve(
        MODULES_DEP,
        "kernel/drivers/virtio/virtio_pci.ko\n",
        &wanted,
        CRYPTO_FOR_EXT4,
    )
    .unwrap();
    assert_eq!(
        files,
        [
            "kernel/drivers/block/virtio_blk.ko.xz",
            "kernel/fs/jbd2/jbd2.ko.xz",
            "kernel/fs/mbcache.ko.xz",
            "kernel/lib/crc16.ko.xz",
            "kernel/fs/ext4/ext4.ko.xz",
            "kernel/crypto/crc32c_generic.ko.xz",
        ]
    );
    let e = resolve(MODULES_DEP, "", &["nvme".to_owned()], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "module nvme is neither in modules.dep nor built in"
    );
}

#[test]
fn only_plain_roots_named_by_device_or_uuid_are_taken() {
    let ext4 = Root {
        device: (254, 0),
        fstype: "ext4".into(),
    };
    assert!(root_supported(&ext4, "root=/dev/vda rw quiet").is_ok());
    assert!(root_supported(&ext4, "root=UUID=0b7c-11 ro").is_ok());
    assert!(root_supported(&ext4, "root=/dev/disk/by-uuid/0b7c-11 ro").is_err());
    assert!(root_supported(&ext4, "root=/dev/mapper/vg-root ro").is_err());
    let label = root_supported(&ext4, "root=LABEL=root ro").unwrap_err();
    assert!(label.to_string().contains("root=\"LABEL=root\""), "{label}");
    let btrfs = Root {
        fstype: "btrfs".into(),
        ..ext4
    };
    assert!(root_supported(&btrfs, "root=/dev/vda").is_err());
}

#[test]
fn the_archive_holds_init_its_libraries_the_modules_and_their_order() {
    let dir = temp("build");
    let sys = sysfs(&dir);
    let modules_dir = dir.join("lib/modules/6.12.117+deb12-amd64");
    for line in MODULES_DEP.lines() {
        let file = modules_dir.join(line.split(':').next().unwrap());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, b"module").unwrap();
    }
    std::fs::write(modules_dir.join("modules.dep"), MODULES_DEP).unwrap();
    std::fs::write(
        modules_dir.join("modules.builtin"),
        "kernel/drivers/virtio/virtio_pci.ko\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("usr/lib/x86_64-linux-gnu")).unwrap();
    let loader = dir.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    std::fs::write(&loader, b"loader").unwrap();
    let seccomp = dir.join("usr/lib/x86_64-linux-gnu/libseccomp.so.2.5.4");
    std::fs::write(&seccomp, b"library").unwrap();
    let soname = dir.join("usr/lib/x86_64-linux-gnu/libseccomp.so.2");
    symlink("libseccomp.so.2.5.4", soname).unwrap();
    std::fs::write(dir.join("relive"), b"relive").unwrap();
    let sources = Sources {
        sys,
        modules_dir,
        exe: dir.join("relive"),
        libraries: vec![loader.clone(), seccomp],
        // The volume is left to LVM's units: no error.
        other_disks: vec![(253, 0), (254, 0)],
    };
    let root = Root {
        device: (254, 0),
        fstype: "ext4".into(),
    };
    let out = dir.join("initrd.img");
    let plain = build(&sources, &root, None, &out).unwrap_err();
    assert!(
        plain.to_string().contains("does not decompress modules"),
        "{plain}"
    );
    let built = build(&sources, &root, Some("CONFIG_MODULE_DECOMPRESS=y\n"), &out).unwrap();
    assert_eq!(
        built.modules,
        [
            "virtio_blk",
            "jbd2",
            "mbcache",
            "crc16",
            "ext4",
            "failover",
            "net_failover",
            "virtio_net",
            "crc32c_generic"
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let mut read = std::fs::File::open(&out).unwrap();
    let mut names = Vec::new();
    let mut conf = String::new();
    loop {
        let reader = cpio::NewcReader::new(read).unwrap();
        if reader.entry().is_trailer() {
            break;
        }
        let name = reader.entry().name().to_owned();
        let mut data = Vec::new();
        let mut reader = reader;
        std::io::Read::read_to_end(&mut reader, &mut data).unwrap();
        if name == INTERPRETER {
            assert_eq!(data, loader.as_os_str().as_encoded_bytes());
        }
        if name == CONF {
            conf = String::from_utf8(data).unwrap();
        }
        names.push(name);
        read = reader.finish().unwrap();
    }
    for wanted in [
        "init",
        CONF,
        INTERPRETER,
        "lib64",
        "lib/modules/6.12.117+deb12-amd64/kernel/fs/ext4/ext4.ko.xz",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} not in {names:?}"
        );
    }
    assert!(names
        .iter()
        .any(|n| n.ends_with("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")));
    // The soname, as the loader looks for it, beside the file.
    let soname = "usr/lib/x86_64-linux-gnu/libseccomp.so.2";
    assert!(names.iter().any(|n| n.ends_with(soname)), "{names:?}");
    let loads: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("module "))
        .collect();
    assert_eq!(loads.len(), 9);
    assert!(
        loads[0].ends_with("virtio_blk.ko.xz") && loads[4].ends_with("ext4.ko.xz"),
        "{conf}"
    );
    assert!(conf.contains("\nfstype ext4\n"), "{conf}");
}
