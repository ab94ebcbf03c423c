package dispatch

import (
	"errors"
	"net/netip"
	"testing"
)

// TestAddressGuardSpecialPurposeRanges table-tests the dial-time guard, without any
// traffic, against every entry of the IANA IPv4 and IPv6 Special-Purpose Address
// Registries (plus multicast, site-local and the IPv4-compatible form), and against
// addresses that embed an IPv4 address: those are judged by the IPv4 rules.
func TestAddressGuardSpecialPurposeRanges(t *testing.T) {
	t.Parallel()
	guard := addressGuard(nil)
	for _, tc := range []struct {
		addr    string // an address inside the range; the range's name follows
		name    string
		blocked bool
	}{
		// IPv4 Special-Purpose Address Registry.
		{"0.0.0.0", "0.0.0.0/8 this network", true},
		{"0.1.2.3", "0.0.0.0/8 this network", true},
		{"10.1.2.3", "10.0.0.0/8 private", true},
		{"100.64.0.1", "100.64.0.0/10 shared address space", true},
		{"100.127.255.254", "100.64.0.0/10 shared address space", true},
		{"127.0.0.1", "127.0.0.0/8 loopback", true},
		{"127.255.255.254", "127.0.0.0/8 loopback", true},
		{"169.254.169.254", "169.254.0.0/16 link local (cloud metadata)", true},
		{"172.16.0.1", "172.16.0.0/12 private", true},
		{"172.31.255.254", "172.16.0.0/12 private", true},
		{"192.0.0.1", "192.0.0.0/24 IETF protocol assignments", true},
		{"192.0.0.8", "192.0.0.8/32 IPv4 dummy address", true},
		{"192.0.0.9", "192.0.0.9/32 PCP anycast", true},
		{"192.0.0.10", "192.0.0.10/32 TURN anycast", true},
		{"192.0.0.170", "192.0.0.170/32 NAT64/DNS64 discovery", true},
		{"192.0.0.171", "192.0.0.171/32 NAT64/DNS64 discovery", true},
		{"192.0.2.1", "192.0.2.0/24 documentation (TEST-NET-1)", true},
		{"192.31.196.1", "192.31.196.0/24 AS112-v4 (globally reachable)", false},
		{"192.52.193.1", "192.52.193.0/24 AMT (globally reachable)", false},
		{"192.88.99.1", "192.88.99.0/24 deprecated 6to4 relay anycast", true},
		{"192.168.1.1", "192.168.0.0/16 private", true},
		{"192.175.48.1", "192.175.48.0/24 direct delegation AS112 (globally reachable)", false},
		{"198.18.0.1", "198.18.0.0/15 benchmarking", true},
		{"198.19.255.254", "198.18.0.0/15 benchmarking", true},
		{"198.51.100.1", "198.51.100.0/24 documentation (TEST-NET-2)", true},
		{"203.0.113.1", "203.0.113.0/24 documentation (TEST-NET-3)", true},
		{"240.0.0.1", "240.0.0.0/4 reserved", true},
		{"255.255.255.254", "240.0.0.0/4 reserved", true},
		{"255.255.255.255", "255.255.255.255/32 limited broadcast", true},
		{"224.0.0.1", "224.0.0.0/4 multicast", true},
		{"239.255.255.250", "224.0.0.0/4 multicast", true},
		{"8.8.8.8", "public", false},
		{"93.184.215.14", "public", false},
		// IPv6 Special-Purpose Address Registry.
		{"::1", "::1/128 loopback", true},
		{"::", "::/128 unspecified", true},
		{"::ffff:10.0.0.1", "::ffff:0:0/96 IPv4-mapped, private IPv4", true},
		{"::ffff:127.0.0.1", "::ffff:0:0/96 IPv4-mapped, loopback IPv4", true},
		{"::ffff:8.8.8.8", "::ffff:0:0/96 IPv4-mapped, public IPv4", false},
		{"64:ff9b::10.0.0.1", "64:ff9b::/96 NAT64, private IPv4", true},
		{"64:ff9b::169.254.169.254", "64:ff9b::/96 NAT64, link-local IPv4", true},
		{"64:ff9b::127.0.0.1", "64:ff9b::/96 NAT64, loopback IPv4", true},
		{"64:ff9b::8.8.8.8", "64:ff9b::/96 NAT64, public IPv4", false},
		{"64:ff9b:1::a00:1", "64:ff9b:1::/48 local-use NAT64", true},
		{"64:ff9b:1:ffff::808:808", "64:ff9b:1::/48 local-use NAT64", true},
		{"100::1", "100::/64 discard-only", true},
		{"100:0:0:1::1", "100:0:0:1::/64 dummy IPv6 prefix", true},
		{"2001::1", "2001::/23 IETF protocol assignments (Teredo 2001::/32)", true},
		{"2001:1::1", "2001:1::1/128 PCP anycast", true},
		{"2001:1::2", "2001:1::2/128 TURN anycast", true},
		{"2001:1::3", "2001:1::3/128 DNS-SD SRP anycast", true},
		{"2001:2::1", "2001:2::/48 benchmarking", true},
		{"2001:3::1", "2001:3::/32 AMT", true},
		{"2001:4:112::1", "2001:4:112::/48 AS112-v6", true},
		{"2001:10::1", "2001:10::/28 deprecated ORCHID", true},
		{"2001:20::1", "2001:20::/28 ORCHIDv2", true},
		{"2001:30::1", "2001:30::/28 drone remote ID", true},
		{"2001:1ff:ffff::1", "2001::/23 IETF protocol assignments", true},
		{"2001:db8::1", "2001:db8::/32 documentation", true},
		{"2002:a00:1::1", "2002::/16 6to4 embedding 10.0.0.1", true},
		{"2002:7f00:1::1", "2002::/16 6to4 embedding 127.0.0.1", true},
		{"2002:a9fe:a9fe::1", "2002::/16 6to4 embedding 169.254.169.254", true},
		{"2002:808:808::1", "2002::/16 6to4 embedding 8.8.8.8", false},
		{"2620:4f:8000::1", "2620:4f:8000::/48 direct delegation AS112 (globally reachable)", false},
		{"3fff::1", "3fff::/20 documentation", true},
		{"3fff:fff:ffff::1", "3fff::/20 documentation", true},
		{"5f00::1", "5f00::/16 segment routing SIDs", true},
		{"fc00::1", "fc00::/7 unique local", true},
		{"fd12:3456::1", "fc00::/7 unique local", true},
		{"fe80::1", "fe80::/10 link-local", true},
		{"fe80::1%eth0", "fe80::/10 link-local with a zone", true},
		{"fec0::1", "fec0::/10 deprecated site-local", true},
		{"ff02::1", "ff00::/8 multicast", true},
		{"ff0e::1", "ff00::/8 multicast", true},
		{"::10.0.0.1", "::/96 deprecated IPv4-compatible", true},
		{"::8.8.8.8", "::/96 deprecated IPv4-compatible", true},
		{"2606:4700::1111", "public", false},
		{"2a00:1450:4001::200e", "public", false},
	} {
		ap := netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 443)
		err := guard("tcp", ap.String(), nil)
		if got := err != nil; got != tc.blocked {
			t.Errorf("%s (%s): blocked = %v (%v), want %v", tc.addr, tc.name, got, err, tc.blocked)
		}
		if err != nil && !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("%s: %v does not wrap ErrBlockedAddress", tc.addr, err)
		}
	}
}

// TestAddressGuardAllowList: a range on the allow list is reachable, directly or through
// an address that embeds it; nothing else is.
func TestAddressGuardAllowList(t *testing.T) {
	t.Parallel()
	guard := addressGuard([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("64:ff9b:1::/48"), netip.MustParsePrefix("fd00::/8")})
	for addr, blocked := range map[string]bool{
		"10.1.2.3": false, "::ffff:10.1.2.3": false, "64:ff9b::10.1.2.3": false, "2002:a01:203::1": false,
		"64:ff9b:1::a01:203": false, "fd12::1": false,
		"192.168.1.1": true, "127.0.0.1": true, "64:ff9b::192.168.1.1": true, "fc00::1": true,
	} {
		err := guard("tcp", netip.AddrPortFrom(netip.MustParseAddr(addr), 443).String(), nil)
		if (err != nil) != blocked {
			t.Errorf("%s: err = %v, want blocked %v", addr, err, blocked)
		}
	}
	if err := guard("tcp", "not an address", nil); !errors.Is(err, ErrBlockedAddress) {
		t.Errorf("unparsable address: %v", err)
	}
}
