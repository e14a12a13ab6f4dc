import Foundation
import XCTest

@testable import SwaleNames

/// Asserts that `text` is rejected at `position` with a message containing every fragment.
func assertRejected(
    _ text: String, at position: Int, _ fragments: String..., file: StaticString = #filePath, line: UInt = #line
) {
    do {
        let name = try PortName.parse(text)
        XCTFail("'\(text)' was accepted as \(name)", file: file, line: line)
    } catch {
        XCTAssertEqual(error.input, text, file: file, line: line)
        XCTAssertEqual(error.position, position, "position for '\(text)': \(error)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(
                error.message.contains(fragment), "'\(error.message)' should mention \(fragment)", file: file,
                line: line)
        }
    }
}

func parsed(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> PortName? {
    do {
        return try PortName.parse(text)
    } catch {
        XCTFail("'\(text)' was rejected: \(error)", file: file, line: line)
        return nil
    }
}

final class NetmapTableTests: XCTestCase {
    // Cases from the nmreq_parse_tests table of netmap's utils/ctrl-api-test.c, mapped onto Swale's
    // grammar (no "netmap:" prefix, no ring/flag/memory suffixes).

    func testAcceptedValeNames() {
        XCTAssertEqual(parsed("vale0:0")?.base, .bridgePort(bridge: "vale0", port: "0"))
        XCTAssertEqual(parsed("vale:0")?.base, .bridgePort(bridge: "vale", port: "0"))
        XCTAssertEqual(parsed("valeXXX:YYY")?.base, .bridgePort(bridge: "valeXXX", port: "YYY"))
        let pipe = parsed("vale0:0{0")
        XCTAssertEqual(pipe?.base, .bridgePort(bridge: "vale0", port: "0"))
        XCTAssertEqual(pipe?.pipe?.role, .master)
        XCTAssertEqual(pipe?.pipe?.id, "0")
        XCTAssertEqual(pipe?.description, "vale0:0<0")
        // Also from the test program: the pipe on a VALE port used for the extra-buffers test.
        XCTAssertEqual(parsed("valeX1:Y4{pipeexbuf")?.description, "valeX1:Y4<pipeexbuf")
    }

    func testPipesOnInterfaces() {
        // "netmap:pipe{0", "netmap:pipe{in" without the prefix.
        let a = parsed("pipe{0")
        XCTAssertEqual(a?.base, .interface("pipe"))
        XCTAssertEqual(a?.pipe?.role, .master)
        XCTAssertEqual(a?.pipe?.id, "0")
        XCTAssertEqual(parsed("pipe{in")?.pipe?.id, "in")
        // pipe_slave / pipe_port_info_get / pipe_pools_info_get
        XCTAssertEqual(parsed("tap123}pipeid2")?.pipe?.role, .slave)
        XCTAssertEqual(parsed("tap123{xid")?.description, "tap123<xid")
        // "netmap:pipe{in-7": a ring number after the pipe id.
        assertRejected("pipe{in-7", at: 7, "ring selection", "'-7'")
        // "netmap:pipe{1}2": two pipe suffixes.
        assertRejected("pipe{1}2", at: 6, "pipe")
    }

    func testRingAndFlagSuffixesAreRejected() {
        assertRejected("valeXXX:YYY-4", at: 11, "ring selection", "'-4'", "not supported")
        assertRejected("vale0:0@opt", at: 7, "'@opt'", "not supported")
        assertRejected("vale0:0/Tx@opt", at: 7, "ring selection", "'/Tx'", "not supported")
        assertRejected("vale0:0-3@opt", at: 7, "'-3'")
        assertRejected("vale0:0@", at: 7, "'@'")
        for flag in ["x", "z", "r", "t", "R", "T"] {
            assertRejected("eth0/" + flag, at: 4, "ring selection", "'/\(flag)'")
        }
        assertRejected("eth0*", at: 4, "ring selection", "'*'")
        assertRejected("eth0^", at: 4, "ring selection", "'^'")
        assertRejected("eth0^1", at: 4, "'^1'")
        assertRejected("eth0@2", at: 4, "'@2'")
        assertRejected("eth0@2/R", at: 4, "'@2'")
        assertRejected("eth0@2/R@2", at: 4, "'@2'")
        assertRejected("eth0/R@xxx", at: 4, "'/R'")
        assertRejected("eth0@netmap:lo/R", at: 4, "'@netmap'")
        // '-' is part of a Linux interface name, so the flags are what is rejected here.
        assertRejected("eth0-2/Tx", at: 6, "'/Tx'")
        assertRejected("vale0:a<p-1", at: 9, "ring selection", "'-1'")
        assertRejected("vale0:a<p*", at: 9, "'*'")
    }

    func testNetmapPrefixIsRejected() {
        for text in ["netmap:eth0", "netmap:", "netmap:^", "netmap:{", "netmap:vale0:0", "netmap:14", "netmap:eth0-1"] {
            assertRejected(text, at: 0, "'netmap:' prefix")
        }
        // "netmapXXX:eth0": not a vale name, so ':' is an error.
        assertRejected("netmapXXX:eth0", at: 9, "':'")
    }

    func testEmptyName() {
        assertRejected("", at: 0, "empty")
    }

    func testDeliberateDifferencesFromNetmap() {
        // netmap needs "netmap:eth0"; here a plain name is an interface.
        XCTAssertEqual(parsed("eth0")?.base, .interface("eth0"))
        XCTAssertEqual(parsed("14")?.base, .interface("14"))
        // netmap would read "-1" as a ring; Linux names such as wlan0-1 or br-lan are common.
        XCTAssertEqual(parsed("eth0-1")?.base, .interface("eth0-1"))
        XCTAssertEqual(parsed("br-lan")?.base, .interface("br-lan"))
        XCTAssertEqual(parsed("eth0.100")?.base, .interface("eth0.100"))
        // netmap rejects "eth0&", and so does Swale.
        assertRejected("eth0&", at: 4, "'&'", "interface name")
    }
}

final class PortNameErrorTests: XCTestCase {
    func testEmptyBridgePort() {
        assertRejected("vale0:", at: 6, "empty port name")
        assertRejected("vale:", at: 5, "empty port name")
        assertRejected("vale0:<1", at: 6, "empty port name")
    }

    func testTwoColons() {
        assertRejected("vale0::a", at: 6, "second ':'")
        assertRejected("vale0:a:b", at: 7, "second ':'")
    }

    func testMissingPort() {
        assertRejected("vale0", at: 5, "missing ':PORT'", "'vale0'")
        assertRejected("vale", at: 4, "missing ':PORT'")
        assertRejected("vale0<1", at: 5, "missing ':PORT'")
    }

    func testEmptyPipeID() {
        assertRejected("vale0:a<", at: 8, "empty pipe id")
        assertRejected("vale0:a}", at: 8, "empty pipe id")
        assertRejected("eth0{", at: 5, "empty pipe id")
        assertRejected("vale0:a<>", at: 8, "empty pipe id")
        do {
            _ = try PortName.parse("vale0:a<")
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.description, "invalid name 'vale0:a<': empty pipe id at position 8")
        }
    }

    func testTwoPipeSuffixes() {
        assertRejected("vale0:a<1>2", at: 9, "second pipe suffix", "'>'")
        assertRejected("vale0:a{1}2", at: 9, "second pipe suffix", "'}'")
        assertRejected("vale0:a<1<2", at: 9, "second pipe suffix")
        assertRejected("eth0>x{y", at: 6, "second pipe suffix")
    }

    func testEmptyBaseBeforePipe() {
        assertRejected("<1", at: 0, "empty name", "'<'")
        assertRejected("}x", at: 0, "empty name")
    }

    func testIllegalCharactersInBridge() {
        assertRejected("vale-x:a", at: 4, "'-'", "bridge name")
        assertRejected("vale.0:a", at: 4, "'.'", "bridge name")
        assertRejected("vale0/R:a", at: 5, "'/'", "bridge name")
        assertRejected("valé0:a", at: 3, "non-ASCII")  // not a vale name: an interface with 'é'
        assertRejected("vale\u{E9}:a", at: 4, "non-ASCII", "bridge name")
    }

    func testColonOnInterfaceName() {
        assertRejected("eth0:a", at: 4, "':'", "interface")
        assertRejected(":a", at: 0, "':'")
        assertRejected("Vale0:a", at: 5, "':'")  // the prefix is case-sensitive, as in netmap
        assertRejected("eth0<a:b", at: 6, "':'", "pipe id")
    }

    func testIllegalCharacters() {
        assertRejected("vale0:a&b", at: 7, "'&'", "port name")
        assertRejected("vale0:a.b", at: 7, "'.'", "port name")
        assertRejected("vale0:a-b", at: 7, "'-'", "port name")
        assertRejected("vale0:é", at: 6, "non-ASCII", "U+00E9")
        assertRejected("eth0é", at: 4, "non-ASCII")
        assertRejected("vale0:a<i.d", at: 9, "'.'", "pipe id")
        assertRejected("eth%d", at: 3, "'%'")
        assertRejected("a/b", at: 1, "'/b'")
        assertRejected("eth0\u{0}", at: 4, "control character", "U+0000")
        assertRejected("eth\u{7F}", at: 3, "control character")
        assertRejected("e\u{301}th0", at: 0, "non-ASCII")  // combining accent: one Character, not ASCII
        assertRejected("😀", at: 0, "non-ASCII")
        assertRejected("eth0ａ", at: 4, "non-ASCII")  // fullwidth letter
    }

    func testWhitespaceAnywhere() {
        assertRejected(" vale0:a", at: 0, "whitespace")
        assertRejected("vale0:a ", at: 7, "whitespace")
        assertRejected("vale0 :a", at: 5, "whitespace")
        assertRejected("vale0: a", at: 6, "whitespace")
        assertRejected("vale0:a< 1", at: 8, "whitespace")
        assertRejected("eth 0", at: 3, "whitespace", "space")
        assertRejected("eth0\t", at: 4, "whitespace", "U+0009")
        assertRejected("eth0\n", at: 4, "whitespace")
        assertRejected("eth0\r\n", at: 4, "whitespace")
        assertRejected("eth\u{A0}0", at: 3, "whitespace")
        assertRejected("eth\u{2003}0", at: 3, "whitespace")
        assertRejected(" ", at: 0, "whitespace")
    }

    func testDotNames() {
        assertRejected(".", at: 0, "'.'")
        assertRejected("..", at: 0, "'..'")
        XCTAssertEqual(parsed("...")?.base, .interface("..."))
        assertRejected(".<1", at: 0, "'.'")
    }

    func testErrorDescriptionEscapesAndShortens() {
        let error = NameError(message: "m", position: 3, input: "a\tb\u{0}", subject: "name")
        XCTAssertEqual(error.description, "invalid name 'a\\tb\\u{0}': m at position 3")
        let long = String(repeating: "x", count: 1000)
        let e2 = NameError(message: "m", position: 15, input: long)
        XCTAssertTrue(e2.description.contains(String(repeating: "x", count: 64) + "…'"))
        XCTAssertLessThan(e2.description.count, 120)
        XCTAssertEqual(e2.errorDescription, e2.description)
    }
}

final class PortNameLengthTests: XCTestCase {
    let fifteen = "abcdefghijklmno"
    let sixteen = "abcdefghijklmnop"

    func testBridgeLength() {
        XCTAssertEqual(parsed("vale01234567890:a")?.bridge, "vale01234567890")  // 15 bytes
        assertRejected("vale012345678901:a", at: 15, "bridge name", "16 bytes", "15")
    }

    func testPortLength() {
        XCTAssertEqual(parsed("vale0:" + fifteen)?.port, fifteen)
        assertRejected("vale0:" + sixteen, at: 21, "port name", "16 bytes")
    }

    func testInterfaceLength() {
        XCTAssertEqual(parsed(fifteen)?.interfaceName, fifteen)
        assertRejected(sixteen, at: 15, "interface name", "16 bytes")
        assertRejected(sixteen + "<1", at: 15, "interface name")
    }

    func testPipeIDLength() {
        XCTAssertEqual(parsed("eth0<" + fifteen)?.pipe?.id, fifteen)
        assertRejected("eth0<" + sixteen, at: 20, "pipe id", "16 bytes")
    }

    func testLongestName() {
        let text = "vale01234567890:" + fifteen + ">" + fifteen
        let name = parsed(text)
        XCTAssertEqual(name?.description, text)
        XCTAssertEqual(text.utf8.count, 47)
    }

    func testVeryLongInputs() {
        assertRejected(String(repeating: "a", count: 100_000), at: 15, "100000 bytes")
        assertRejected("vale" + String(repeating: "0", count: 100_000) + ":a", at: 15, "bridge name")
        assertRejected("vale0:a<" + String(repeating: "x", count: 100_000), at: 23, "pipe id")
        assertRejected(String(repeating: "日本", count: 50_000), at: 0, "non-ASCII")
        assertRejected(String(repeating: "<", count: 10_000), at: 0, "empty name")
        do {
            _ = try PortName.parse(String(repeating: "é", count: 100_000))
            XCTFail("accepted")
        } catch {
            XCTAssertLessThan(error.description.count, 200)
        }
    }
}

final class PortNameCanonicalTests: XCTestCase {
    func testBothPipeSpellingsAreTheSameName() throws {
        let pairs = [
            ("vale0:a{1", "vale0:a<1"), ("vale0:a}1", "vale0:a>1"),
            ("eth0{x", "eth0<x"), ("eth0}x", "eth0>x")
        ]
        for (netmap, swale) in pairs {
            let a = try PortName.parse(netmap)
            let b = try PortName.parse(swale)
            XCTAssertEqual(a, b)
            XCTAssertEqual(a.hashValue, b.hashValue)
            XCTAssertEqual(a.description, swale)
            XCTAssertEqual(b.description, swale)
        }
        let set: Set<PortName> = try Set(["vale0:a{1", "vale0:a<1", "vale0:a>1", "vale0:a}1", "vale0:a"].map(PortName.parse))
        XCTAssertEqual(set.count, 3)
    }

    func testMasterAndSlaveDiffer() throws {
        XCTAssertNotEqual(try PortName.parse("vale0:a<1"), try PortName.parse("vale0:a>1"))
        XCTAssertNotEqual(try PortName.parse("vale0:a<1"), try PortName.parse("vale0:a"))
        XCTAssertNotEqual(try PortName.parse("vale0:a<1"), try PortName.parse("vale0:a<2"))
        XCTAssertNotEqual(try PortName.parse("vale0:a"), try PortName.parse("vale1:a"))
    }

    func testDescriptionRoundTrips() throws {
        let names = [
            "vale:a", "vale0:a", "vale_lab:port_1", "VALE0", "vale0:0<0", "vale0:0>0", "eth0", "eth0.100",
            "br-lan", "wlan0-1", "_", "...", "x<y", "enp0s31f6>Z_9", "vale01234567890:abcdefghijklmno"
        ]
        for text in names {
            let name = try PortName.parse(text)
            XCTAssertEqual(name.description, text)
            XCTAssertEqual(try PortName.parse(name.description), name)
        }
    }

    func testAccessors() throws {
        let a = try PortName.parse("vale0:a}p1")
        XCTAssertEqual(a.bridge, "vale0")
        XCTAssertEqual(a.port, "a")
        XCTAssertNil(a.interfaceName)
        XCTAssertEqual(a.parentName, "vale0:a")
        XCTAssertEqual(a.parent, try PortName.parse("vale0:a"))
        XCTAssertTrue(a.isPipe)
        XCTAssertEqual(a.pipe?.role, .slave)
        XCTAssertEqual(a.pipe?.id, "p1")

        let b = try PortName.parse("eth0")
        XCTAssertNil(b.bridge)
        XCTAssertNil(b.port)
        XCTAssertEqual(b.interfaceName, "eth0")
        XCTAssertEqual(b.parentName, "eth0")
        XCTAssertFalse(b.isPipe)
        XCTAssertNil(b.pipe)
        XCTAssertEqual(try PortName.parse("eth0<3").parentName, "eth0")
    }

    func testInitializers() throws {
        let a = try PortName(bridge: "vale0", port: "a", pipe: (.master, "1"))
        XCTAssertEqual(a, try PortName.parse("vale0:a{1"))
        XCTAssertEqual(try PortName(interface: "eth0"), try PortName.parse("eth0"))
        XCTAssertEqual(PortName(base: .interface("eth0"), pipe: (role: .slave, id: "x")).description, "eth0>x")
        XCTAssertThrowsError(try PortName(bridge: "br0", port: "a"))
        XCTAssertThrowsError(try PortName(bridge: "vale0", port: "a:b"))
        XCTAssertThrowsError(try PortName(bridge: "vale0", port: "a", pipe: (.slave, "")))
        XCTAssertThrowsError(try PortName(interface: "vale0"))
        XCTAssertThrowsError(try PortName(interface: "eth0<1"))
    }

    func testPipeRole() throws {
        XCTAssertEqual(PipeRole.master.rawValue, "master")
        XCTAssertEqual(PipeRole.slave.rawValue, "slave")
        let data = try JSONEncoder().encode([PipeRole.master, .slave])
        XCTAssertEqual(String(decoding: data, as: UTF8.self), #"["master","slave"]"#)
    }
}

final class ComponentValidationTests: XCTestCase {
    func check(
        _ body: () throws(NameError) -> Void, position: Int, _ fragment: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        do {
            try body()
            XCTFail("accepted", file: file, line: line)
        } catch {
            XCTAssertEqual(error.position, position, "\(error)", file: file, line: line)
            XCTAssertTrue(error.description.contains(fragment), "\(error)", file: file, line: line)
        }
    }

    func testValidateBridge() throws {
        for ok in ["vale", "vale0", "vale_lab", "valeXXX", "vale01234567890"] {
            XCTAssertNoThrow(try Names.validateBridge(ok), ok)
        }
        check({ () throws(NameError) in try Names.validateBridge("") }, position: 0, "empty bridge name")
        check({ () throws(NameError) in try Names.validateBridge("br0") }, position: 0, "must start with 'vale'")
        check({ () throws(NameError) in try Names.validateBridge("vale-x") }, position: 4, "'-'")
        check({ () throws(NameError) in try Names.validateBridge("vale0:a") }, position: 5, "':'")
        check({ () throws(NameError) in try Names.validateBridge("vale012345678901") }, position: 15, "16 bytes")
    }

    func testValidatePortComponent() throws {
        for ok in ["0", "a", "tap_1", "abcdefghijklmno"] {
            XCTAssertNoThrow(try Names.validatePortComponent(ok), ok)
        }
        check({ () throws(NameError) in try Names.validatePortComponent("") }, position: 0, "empty port name")
        check({ () throws(NameError) in try Names.validatePortComponent("a-b") }, position: 1, "'-'")
        check({ () throws(NameError) in try Names.validatePortComponent("a b") }, position: 1, "whitespace")
        check({ () throws(NameError) in try Names.validatePortComponent("abcdefghijklmnop") }, position: 15, "port name")
    }

    func testValidatePipeID() throws {
        XCTAssertNoThrow(try Names.validatePipeID("pipeid1"))
        check({ () throws(NameError) in try Names.validatePipeID("") }, position: 0, "empty pipe id")
        check({ () throws(NameError) in try Names.validatePipeID("a}b") }, position: 1, "'}'")
    }

    func testValidateInterfaceName() throws {
        for ok in ["eth0", "eth0.100", "br-lan", "wlan0-1", "lo", "...", "abcdefghijklmno", "vale0"] {
            XCTAssertNoThrow(try Names.validateInterfaceName(ok), ok)
        }
        check({ () throws(NameError) in try Names.validateInterfaceName("") }, position: 0, "empty interface name")
        check({ () throws(NameError) in try Names.validateInterfaceName(".") }, position: 0, "'.'")
        check({ () throws(NameError) in try Names.validateInterfaceName("..") }, position: 0, "'..'")
        check({ () throws(NameError) in try Names.validateInterfaceName("a/b") }, position: 1, "'/")
        check({ () throws(NameError) in try Names.validateInterfaceName("a b") }, position: 1, "whitespace")
        check({ () throws(NameError) in try Names.validateInterfaceName("a:b") }, position: 1, "':'")
        check({ () throws(NameError) in try Names.validateInterfaceName("abcdefghijklmnop") }, position: 15, "16 bytes")
        check({ () throws(NameError) in try Names.validateInterfaceName("eth0<1") }, position: 4, "'<'")
    }
}

final class MACTests: XCTestCase {
    func testParse() throws {
        XCTAssertEqual(try Names.parseMAC("01:02:03:04:05:06"), 0x0102_0304_0506)
        XCTAssertEqual(try Names.parseMAC("aa:bb:cc:dd:ee:ff"), 0xAABB_CCDD_EEFF)
        XCTAssertEqual(try Names.parseMAC("AA:BB:CC:DD:EE:FF"), 0xAABB_CCDD_EEFF)
        XCTAssertEqual(try Names.parseMAC("aa-bb-cc-dd-ee-ff"), 0xAABB_CCDD_EEFF)
        XCTAssertEqual(try Names.parseMAC("00:00:00:00:00:00"), 0)
        XCTAssertEqual(try Names.parseMAC("ff:ff:ff:ff:ff:ff"), 0xFFFF_FFFF_FFFF)
        XCTAssertEqual(try Names.parseMAC("02:00:5e:10:00:01"), 0x0200_5E10_0001)
    }

    func testFormat() {
        XCTAssertEqual(Names.formatMAC(0x0102_0304_0506), "01:02:03:04:05:06")
        XCTAssertEqual(Names.formatMAC(0xAABB_CCDD_EEFF), "aa:bb:cc:dd:ee:ff")
        XCTAssertEqual(Names.formatMAC(0), "00:00:00:00:00:00")
        XCTAssertEqual(Names.formatMAC(0xFFFF_0000_0000_0001), "00:00:00:00:00:01")  // bits above 48 ignored
    }

    func testRoundTrip() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<1000 {
            let v = rng.next() & 0xFFFF_FFFF_FFFF
            XCTAssertEqual(try Names.parseMAC(Names.formatMAC(v)), v)
        }
        XCTAssertEqual(Names.formatMAC(try Names.parseMAC("AA-0B-cC-dd-EE-f0")), "aa:0b:cc:dd:ee:f0")
    }

    func rejects(_ text: String, at position: Int, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let v = try Names.parseMAC(text)
            XCTFail("'\(text)' was accepted as \(v)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.position, position, "\(error)", file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "\(error)", file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix("invalid MAC address '"), file: file, line: line)
        }
    }

    func testBadMACs() {
        rejects("", at: 0, "empty")
        rejects("aa:bb:cc:dd:ee", at: 14, "expected 6 octets, found 5")
        rejects("aa", at: 2, "found 1")
        rejects("aa:bb:cc:dd:ee:ff:00", at: 17, "too many octets")
        rejects("aa:bb:cc:dd:ee:ff:", at: 17, "too many octets")
        rejects("aa:bb:cc:dd:ee:f", at: 15, "2 hex digits")
        rejects("a:bb:cc:dd:ee:ff", at: 0, "2 hex digits")
        rejects("aa:bb:cc:dd:ee:fff", at: 17, "more than 2 hex digits")
        rejects("aabbccddeeff", at: 2, "more than 2 hex digits")
        rejects("aa:bb:cc:dd:ee:fg", at: 16, "'g'")
        rejects("aa:bb:cc:dd:ee:0x", at: 16, "'x'")
        rejects("aa:bb-cc:dd:ee:ff", at: 5, "mixed separators")
        rejects("aa::bb:cc:dd:ee", at: 3, "empty octet")
        rejects(":aa:bb:cc:dd:ee", at: 0, "empty octet")
        rejects("aa:bb:cc:dd:ee:", at: 15, "missing octet")
        rejects(" aa:bb:cc:dd:ee:ff", at: 0, "whitespace")
        rejects("aa:bb:cc:dd:ee:ff\n", at: 17, "whitespace")
        rejects("ａａ:bb:cc:dd:ee:ff", at: 0, "invalid character")  // fullwidth hex digits
        rejects("aa.bb.cc.dd.ee.ff", at: 2, "'.'")
        rejects(String(repeating: "aa:", count: 100_000), at: 17, "too many octets")
    }
}

/// Deterministic generator so that a failure can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class RandomizedNameTests: XCTestCase {
    func testRandomStringsNeverCrashAndAcceptedNamesRoundTrip() throws {
        var rng = SplitMix64(seed: 0x5A1E)
        let alphabet: [Character] = [
            "v", "a", "l", "e", "0", "1", "9", "x", "Z", ":", "<", ">", "{", "}", "_", "-", "/", "@", " ", ".", "*",
            "^", "%", "&", "\t", "\n", "\u{0}", "é", "e\u{301}", "日", "😀", "\u{A0}", "ａ", "\r\n"
        ]
        let tokens = [
            "vale", "vale0", "vale_lab", ":", "a", "p1", "eth0", "br-lan", "<", ">", "{", "}", "id", "-3", "/R", "@2",
            "*", "^", " ", "é", "netmap:", "..", "abcdefghijklmnop"
        ]
        var accepted = 0
        for round in 0..<10_000 {
            var text = ""
            if round % 2 == 0 {
                for _ in 0..<Int.random(in: 0...20, using: &rng) {
                    text.append(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)])
                }
            } else {
                for _ in 0..<Int.random(in: 1...5, using: &rng) {
                    text += tokens[Int.random(in: 0..<tokens.count, using: &rng)]
                }
            }
            do {
                let name = try PortName.parse(text)
                accepted += 1
                let canonical = name.description
                let again = try PortName.parse(canonical)
                XCTAssertEqual(again, name, "'\(text)'")
                XCTAssertEqual(again.description, canonical, "'\(text)'")
                let canonicalInput = text.replacingOccurrences(of: "{", with: "<").replacingOccurrences(of: "}", with: ">")
                XCTAssertEqual(canonical, canonicalInput)
                XCTAssertLessThanOrEqual(canonical.utf8.count, 47)
            } catch {
                XCTAssertEqual(error.input, text)
                XCTAssertGreaterThanOrEqual(error.position, 0, "\(error)")
                XCTAssertLessThanOrEqual(error.position, text.count, "\(error)")
                XCTAssertFalse(error.message.isEmpty)
            }
        }
        XCTAssertGreaterThan(accepted, 100, "the generator should produce some valid names")
    }
}

/// 10^6 mutated inputs (issue 5): valid names with bytes flipped, inserted, deleted, duplicated
/// or spliced, including invalid UTF-8. Each is either accepted (and round-trips) or refused with
/// a message and a position inside the input.
final class MutatedNameFuzzTests: XCTestCase {
    func testMillionMutatedNames() throws {
        var rng = SplitMix64(seed: 0xF0225)
        let seeds = [
            "vale0:p1", "vale_lab:a{3", "vale1:x}77", "eth0<2", "vale0:port_9>id", "tap-1.x{q", "vale", "vale0:abcdefghijklmno"
        ]
        let bytesOfInterest: [UInt8] = Array(":<>{}_-./@ \t\n\0".utf8) + [0x80, 0xC3, 0xA9, 0xFF, 0xE2, 0x82]
        var accepted = 0, refused = 0
        for _ in 0..<1_000_000 {
            var b = Array(seeds[Int(rng.next() % UInt64(seeds.count))].utf8)
            for _ in 0..<Int(1 + rng.next() % 3) {
                let r = rng.next()
                let at = b.isEmpty ? 0 : Int((r >> 8) % UInt64(b.count))
                switch r % 5 {
                case 0 where !b.isEmpty: b[at] = UInt8(truncatingIfNeeded: r >> 32)
                case 1: b.insert(bytesOfInterest[Int((r >> 16) % UInt64(bytesOfInterest.count))], at: at)
                case 2 where !b.isEmpty: b.remove(at: at)
                case 3: b += b.prefix(at)
                default: b.insert(UInt8(0x30 + (r >> 24) % 75), at: at)
                }
            }
            let text = String(decoding: b, as: UTF8.self)
            do {
                let name = try PortName.parse(text)
                accepted += 1
                XCTAssertEqual(try PortName.parse(name.description), name)
            } catch {
                refused += 1
                if error.message.isEmpty || error.position < 0 || error.position > text.count {
                    XCTFail("bad error for '\(text)': \(error)")
                    return
                }
            }
        }
        XCTAssertGreaterThan(accepted, 1000)
        XCTAssertGreaterThan(refused, 100_000)
    }
}

final class DerivedNameHashTests: XCTestCase {
    func testFNV1aKnownValues() {
        // The published FNV-1a 64-bit test vectors: derived names must not change between versions.
        XCTAssertEqual(Names.fnv1a([UInt8]()), 0xcbf2_9ce4_8422_2325)
        XCTAssertEqual(Names.fnv1a("a".utf8), 0xaf63_dc4c_8601_ec8c)
        XCTAssertEqual(Names.fnv1a("foobar".utf8), 0x8594_4171_f739_67e8)
    }
}
