// Netlink against the real kernel: veth pairs, link attributes, namespaces, addresses, link events.
// Every object is named with a per-run prefix and removed in teardown, even when a test fails.
import Foundation
import Glibc
import SwaleKernel
import XCTest

final class NetlinkTests: XCTestCase {
    var prefix = ""

    override func setUpWithError() throws {
        try requireRoot()
        prefix = uniquePrefix()
    }

    /// Deletes a link we created if it is still there.
    func cleanupLink(_ name: String) {
        addTeardownBlock { _ = try? ip("link", "del", name, allowFailure: true) }
    }

    func makeNamespace(_ name: String) throws {
        try ip("netns", "add", name)
        addTeardownBlock { _ = try? ip("netns", "del", name, allowFailure: true) }
    }

    func waitForEvents(_ w: LinkWatcher, seconds: Double = 2, until match: ([LinkEvent]) -> Bool) -> [LinkEvent] {
        var all: [LinkEvent] = []
        let deadline = Date().addingTimeInterval(seconds)
        var p = pollfd(fd: w.fd, events: Int16(POLLIN), revents: 0)
        while Date() < deadline {
            _ = poll(&p, 1, 50)
            all += w.drainEvents()
            if match(all) { break }
        }
        return all
    }

    func testVethLifecycle() throws {
        let nl = try Netlink()
        let a = prefix + "a", b = prefix + "b"
        cleanupLink(a)
        try nl.createVeth(name: a, peer: b)

        var ia = try XCTUnwrap(nl.linkInfo(name: a))
        let ib = try XCTUnwrap(nl.linkInfo(name: b))
        XCTAssertEqual(ia.kind, "veth")
        XCTAssertEqual(ia.mtu, 1500)
        XCTAssertFalse(ia.isUp)
        XCTAssertNil(ia.masterIndex)
        XCTAssertEqual(ia.mac.count, 6)
        XCTAssertEqual(try nl.linkInfo(ifindex: ib.ifindex)?.name, b)

        try nl.setUp(a, true)
        try nl.setMTU(a, 9000)
        let mac: [UInt8] = [0x02, 0x53, 0x57, 0x41, 0x4c, 0x45]
        try nl.setMAC(a, mac)
        ia = try XCTUnwrap(nl.linkInfo(name: a))
        XCTAssertTrue(ia.isUp)
        XCTAssertEqual(ia.mtu, 9000)
        XCTAssertEqual(ia.mac, mac)
        XCTAssertEqual(ia.macString, "02:53:57:41:4c:45")
        XCTAssertEqual(Netlink.parseMAC("02:53:57:41:4c:45"), mac)
        // `ip` agrees.
        let shown = try ip("-o", "link", "show", "dev", a)
        XCTAssertTrue(shown.contains("mtu 9000"), shown)
        XCTAssertTrue(shown.contains("02:53:57:41:4c:45"), shown)

        // Promiscuity: set, read back, restore what was there.
        let before = try nl.setPromiscuous(a, true)
        XCTAssertFalse(before)
        XCTAssertTrue(try nl.isPromiscuous(a))
        try nl.setPromiscuous(a, before)
        XCTAssertFalse(try nl.isPromiscuous(a))
        try nl.setUp(a, false)
        XCTAssertFalse(try XCTUnwrap(nl.linkInfo(name: a)).isUp)

        // Errors name the object and the reason.
        XCTAssertThrowsError(try nl.createVeth(name: a, peer: prefix + "c")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains(a), text)
            XCTAssertTrue((e as? KernelError)?.isExists ?? false, text)
        }
        XCTAssertThrowsError(try nl.setMTU(prefix + "zz", 1500)) { e in
            XCTAssertTrue("\(e)".contains(self.prefix + "zz"), "\(e)")
        }
        XCTAssertThrowsError(try nl.createVeth(name: "averylonginterface0", peer: b)) { e in
            XCTAssertTrue("\(e)".contains("15"), "\(e)")
        }
        XCTAssertThrowsError(try nl.setMAC(a, [1, 2, 3, 4, 5, 6])) { e in
            XCTAssertTrue("\(e)".contains("multicast"), "\(e)")
        }

        // Deletion is seen by a watcher, and both ends go.
        let watcher = try LinkWatcher()
        try nl.delete(link: a)
        XCTAssertNil(try nl.linkInfo(name: a))
        XCTAssertNil(try nl.linkInfo(name: b))
        XCTAssertFalse(nl.exists(ifindex: ia.ifindex))
        let events = waitForEvents(watcher) { ev in
            ev.contains(.removed(ifindex: ia.ifindex, name: a)) && ev.contains(.removed(ifindex: ib.ifindex, name: b))
        }
        XCTAssertTrue(events.contains(.removed(ifindex: ia.ifindex, name: a)), "\(events)")
        XCTAssertTrue(events.contains(.removed(ifindex: ib.ifindex, name: b)), "\(events)")
        XCTAssertThrowsError(try nl.delete(link: a)) { e in
            XCTAssertTrue((e as? KernelError)?.isNotFound ?? false, "\(e)")
            XCTAssertTrue("\(e)".contains(a), "\(e)")
        }
    }

    func testMoveToNamespaceAndAddress() throws {
        let nl = try Netlink()
        let a = prefix + "a", b = prefix + "b", ns = prefix + "ns"
        let net = subnetByte()
        try makeNamespace(ns)
        cleanupLink(a)
        try nl.createVeth(name: a, peer: b)
        let ib = try XCTUnwrap(nl.linkInfo(name: b))
        let watcher = try LinkWatcher()

        try nl.moveToNamespace(link: b, nsPath: ns)
        XCTAssertNil(try nl.linkInfo(name: b), "moved away from this namespace")
        XCTAssertNotNil(try nl.linkInfo(name: a))
        let events = waitForEvents(watcher) { $0.contains(.removed(ifindex: ib.ifindex, name: b)) }
        XCTAssertTrue(events.contains(.removed(ifindex: ib.ifindex, name: b)), "\(events)")

        try Netlink.configureInNamespace(nsPath: ns, link: b, up: true, address: "10.201.\(net).2/24", mtu: 1400)
        try Netlink.inNamespace(ns) { nl in
            try nl.addAddress(link: b, cidr: "fd53:\(net)::2/64", noDAD: true)
            try nl.setUp("lo", true)
        }
        let inside = try Netlink.inNamespace(ns) { nl in try nl.linkInfo(name: b) }
        let info = try XCTUnwrap(inside)
        XCTAssertTrue(info.isUp)
        XCTAssertEqual(info.mtu, 1400)
        XCTAssertEqual(info.kind, "veth")

        let addrs = try ip("-n", ns, "-o", "addr", "show", "dev", b)
        XCTAssertTrue(addrs.contains("10.201.\(net).2/24"), addrs)
        XCTAssertTrue(addrs.contains("brd 10.201.\(net).255"), addrs)
        XCTAssertTrue(addrs.contains("fd53:\(net)::2/64"), addrs)

        // The namespace path form works too, and errors name the namespace.
        XCTAssertNoThrow(try Netlink.inNamespace("/var/run/netns/" + ns) { nl in _ = try nl.linkInfo(name: b) })
        XCTAssertThrowsError(try nl.moveToNamespace(link: a, nsPath: prefix + "none")) { e in
            XCTAssertTrue("\(e)".contains("/var/run/netns/\(self.prefix)none"), "\(e)")
        }
        XCTAssertThrowsError(try nl.addAddress(link: a, cidr: "10.1.2.3")) { e in
            XCTAssertTrue("\(e)".contains("prefix length"), "\(e)")
        }
        XCTAssertThrowsError(try nl.addAddress(link: a, cidr: "nonsense/8")) { e in
            XCTAssertTrue("\(e)".contains("nonsense/8"), "\(e)")
        }
    }
}
