//! Which addresses a fetch may reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True when `ip` is a globally reachable unicast address that a server-side
/// fetch may connect to.
///
/// Refused: unspecified, loopback, private (RFC 1918), shared/CGNAT
/// (100.64.0.0/10), link-local, "this network" (0.0.0.0/8), IETF protocol
/// assignments (192.0.0.0/24), documentation ranges, the 6to4 relay anycast,
/// benchmarking (198.18.0.0/15), multicast, reserved (240.0.0.0/4) and
/// broadcast. For IPv6 only global unicast (2000::/3) is accepted, minus the
/// special ranges in it (2001::/23 incl. Teredo, 2001:db8::/32, 3fff::/20);
/// addresses that embed an IPv4 address (IPv4-mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the embedded address.
/// IPv4-compatible `::/96`, the local NAT64 prefix `64:ff9b:1::/48`, ULA,
/// link-local, site-local and multicast lie outside 2000::/3 and are refused.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn in_v4_net(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const DENY: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", incl. 0.0.0.0
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, incl. 255.255.255.255 broadcast
    ];
    !DENY.iter().any(|&(net, prefix)| in_v4_net(ip, net, prefix))
}

fn in_v6_net(ip: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (net & mask)
}

/// The IPv4 address in the low 32 bits.
fn low_v4(bits: u128) -> Ipv4Addr {
    // Truncation to the low 32 bits is the point here.
    Ipv4Addr::from((bits & 0xffff_ffff) as u32)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    // IPv4-mapped ::ffff:a.b.c.d: a dual-stack socket connects to a.b.c.d.
    if in_v6_net(ip, 0xffff_0000_0000, 96) {
        return is_public_v4(low_v4(bits));
    }
    // NAT64 well-known prefix 64:ff9b::/96: the gateway connects to the embedded v4.
    if in_v6_net(ip, 0x0064_ff9b << 96, 96) {
        return is_public_v4(low_v4(bits));
    }
    // Only global unicast beyond this point; this refuses ::/96 (unspecified,
    // loopback, IPv4-compatible), 64:ff9b:1::/48, 100::/64, fc00::/7,
    // fe80::/10, fec0::/10 and ff00::/8 among others.
    if !in_v6_net(ip, 0x2000 << 112, 3) {
        return false;
    }
    // 6to4 2002:aabb:ccdd::/48 embeds a.b.c.d in bits 16..48.
    if in_v6_net(ip, 0x2002 << 112, 16) {
        return is_public_v4(low_v4(bits >> 80));
    }
    const DENY: &[(u128, u32)] = &[
        (0x2001 << 112, 23), // IETF protocol assignments, incl. Teredo 2001::/32
        ((0x2001 << 112) | (0xdb8 << 96), 32), // documentation
        (0x3fff << 112, 20), // documentation (RFC 9637)
    ];
    !DENY.iter().any(|&(net, prefix)| in_v6_net(ip, net, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_addresses() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.1.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::a00:1",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::1",
            "64:ff9b:1::808:808",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
            "2002::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "5f00::1",
        ];
        for s in refused {
            let ip: IpAddr = s.parse().expect("test literal");
            assert!(!is_public_ip(ip), "{s} must not be public");
        }
    }

    #[test]
    fn public_addresses() {
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.3.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "11.0.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::200e",
            "2620:fe::fe",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for s in public {
            let ip: IpAddr = s.parse().expect("test literal");
            assert!(is_public_ip(ip), "{s} must be public");
        }
    }
}
