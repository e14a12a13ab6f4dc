// The positional JSON reader and the configuration checker: every error names file, line and what.
import SwaleConfig
import XCTest

final class JSONDocumentTests: XCTestCase {
    func testValuesAndLines() throws {
        let v = try JSONValue.parse("{\n \"a\": [1, -2.5e3, true],\n \"b\": \"x\\u00e9\\ud83d\\ude00\\n\",\n \"c\": null\n}")
        guard case .object(let ms) = v.kind else { return XCTFail() }
        XCTAssertEqual(ms.map(\.key), ["a", "b", "c"])
        XCTAssertEqual(ms.map(\.value.line), [2, 3, 4])
        XCTAssertEqual(ms[0].value, .array([JSONValue(.number("1")), JSONValue(.number("-2.5e3")), JSONValue(.bool(true))]))
        XCTAssertEqual(ms[1].value, .string("xé😀\n"))
    }

    func testSyntaxErrorsHaveLineAndColumn() {
        let cases: [(String, Int, Int, String)] = [
            ("{\n  \"a\": 1,\n}", 3, 1, "expected a key"),
            ("{\"a\": 1 \"b\": 2}", 1, 9, "',' or '}'"),
            ("[1, 2", 1, 6, "unterminated array"),
            ("{\"a\": tru}", 1, 7, "expected true"),
            ("{\"a\": 01}", 1, 8, "',' or '}'"),
            ("{\"a\": \"x\ty\"}", 1, 9, "control character"),
            ("{\"a\": 1, \"a\": 2}", 1, 12, "appears twice"),
            ("{} x", 1, 4, "after the end"),
            ("\"\\q\"", 1, 4, "unknown escape"),
            ("\"\\ud800x\"", 1, 8, "lone surrogate"),
            ("", 1, 1, "end of the file"),
            ("// comment\n{}", 1, 1, "unexpected character '/'")
        ]
        for (text, line, col, what) in cases {
            do {
                _ = try JSONValue.parse(text)
                XCTFail("accepted \(text)")
            } catch let e as JSONSyntaxError {
                XCTAssertEqual(e.line, line, "\(text): \(e)")
                XCTAssertEqual(e.column, col, "\(text): \(e)")
                XCTAssertTrue(e.message.contains(what), "\(text): \(e)")
            } catch { XCTFail("\(error)") }
        }
    }

    func testDepthIsBounded() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try JSONValue.parse(deep)) { XCTAssertTrue("\($0)".contains("nesting")) }
        let ok = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        XCTAssertNoThrow(try JSONValue.parse(ok))
    }

    func testRenderedParsesBackToTheSameValue() throws {
        let v = JSONValue.object([
            ("s", .string("a\"b\\c\n\u{1}é")), ("n", .int(-7)), ("a", .array([.int(1), .object([])])), ("z", nil)
        ])
        XCTAssertEqual(try JSONValue.parse(v.rendered()), v)
    }

    /// Random and mutated documents: refused with a position or accepted; never a crash.
    func testMutatedDocumentsNeverCrash() throws {
        var state: UInt64 = 0xC0FF
        func next() -> UInt64 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return state >> 11 }
        let seed = Array(
            "{\"bridges\": [{\"name\": \"vale0\", \"ports\": [{\"kind\": \"veth\", \"name\": \"v1\", \"peer\": \"p1\", \"mtu\": 1500}]}], \"slots\": 512}"
                .utf8)
        let noise = Array("{}[]\":,\\u0123456789eE+-. \ntrfalsn".utf8) + [0xff, 0xc3]
        var accepted = 0
        for _ in 0..<100_000 {
            var b = seed
            for _ in 0..<Int(1 + next() % 4) {
                let at = Int(next() % UInt64(b.count + 1))
                switch next() % 3 {
                case 0 where at < b.count: b[at] = noise[Int(next() % UInt64(noise.count))]
                case 1 where at < b.count: b.remove(at: at)
                default: b.insert(noise[Int(next() % UInt64(noise.count))], at: at)
                }
            }
            let text = String(decoding: b, as: UTF8.self)
            do { _ = try SwaleConfig.parse(text, file: "f"); accepted += 1 } catch let e as ConfigError {
                XCTAssertEqual(e.file, "f")
                XCTAssertFalse(e.message.isEmpty)
            }
        }
        XCTAssertGreaterThan(accepted, 10)
    }
}

final class SwaleConfigTests: XCTestCase {
    let good = """
        {
          "socket": "/run/swale/x.sock",
          "socketGroup": "swale",
          "slots": 512,
          "clientMaxPorts": 8, "forwardingNice": -5, "forwardingCPUs": "3,0-1",
          "bridges": [
            { "name": "vale0", "agingSeconds": 60, "batch": 256, "ports": [
                { "kind": "tap", "name": "tap0", "mtu": 9000, "mac": "02:AA:00:00:00:01" },
                { "kind": "veth", "name": "c1", "peer": "eth0", "netns": "ctr1", "address": "10.0.0.1/24" },
                { "kind": "veth", "name": "c2", "peer": "eth0", "netns": "/proc/1/ns/net", "address": "fd00::2/64" },
                { "kind": "attach", "name": "dummy0" }
            ] },
            { "name": "vale1" }
          ]
        }
        """

    func testGoodConfig() throws {
        let c = try SwaleConfig.parse(good, file: "g.json")
        XCTAssertEqual(c.slots, 512)
        XCTAssertEqual(c["forwardingNice"], -5)
        XCTAssertEqual(c.forwardingCPUs, [0, 1, 3])
        XCTAssertEqual(c.socketGroup, "swale")
        XCTAssertEqual(c.bridges.map(\.name), ["vale0", "vale1"])
        XCTAssertEqual(c.bridges[0].ports.map(\.name), ["tap0", "c1", "c2", "dummy0"])
        XCTAssertEqual(c.bridges[0].ports[0].mac, "02:aa:00:00:00:01", "MACs are normalized")
        XCTAssertEqual(c.bridges[0].ports.map(\.line), [8, 9, 10, 11])
        XCTAssertEqual(c.lines["socketGroup"], 3)
    }

    func testRoundTrip() throws {
        let c = try SwaleConfig.parse(good)
        let again = try SwaleConfig.parse(c.rendered())
        XCTAssertEqual(again, c)
        XCTAssertEqual(again.rendered(), c.rendered())
    }

    /// (file text, line, words the message must contain)
    func testErrorsNameTheLineAndTheProblem() {
        func cfg(_ ports: String, bridge: String = "\"name\": \"vale0\"") -> String {
            "{\n\"bridges\": [\n{ \(bridge), \"ports\": [\n\(ports)\n] }\n]\n}"
        }
        let cases: [(String, Int, [String])] = [
            ("{\n\"slots\": 10\n}", 2, ["slots", "out of range"]),
            ("{\n\"slots\": \"many\"\n}", 2, ["slots", "whole number"]),
            ("{\n\"batch\": 1.5\n}", 2, ["batch", "whole number"]),
            ("{\n\"pollMode\": \"fast\"\n}", 2, ["pollMode", "yield"]),
            ("{\n\"forwardingNice\": -21\n}", 2, ["forwardingNice", "out of range"]),
            ("{\n\"forwardingCPUs\": \"2-1\"\n}", 2, ["forwardingCPUs", "descending", "1-2"]),
            ("{\n\"forwardingCPUs\": 1\n}", 2, ["forwardingCPUs", "string"]),
            ("{\n\"sockt\": \"/x\"\n}", 2, ["unknown setting 'sockt'"]),
            ("{\n\"socket\": \"relative.sock\"\n}", 2, ["absolute"]),
            ("[]", 1, ["must be an object"]),
            ("{\n\"bridges\": [{\"name\": \"br0\"}]\n}", 2, ["bridges[0].name", "vale"]),
            ("{\n\"bridges\": [\n{\"name\": \"vale0\"},\n{\"name\": \"vale0\"}\n]\n}", 4, ["configured twice", "line 3"]),
            (cfg("{\"kind\": \"tup\", \"name\": \"t0\"}"), 4, ["kind", "tap, veth, attach, vxlan or geneve", "tup"]),
            (cfg("{\"name\": \"t0\"}"), 4, ["no kind"]),
            (cfg("{\"kind\": \"tap\"}"), 4, ["no name"]),
            (cfg("{\"kind\": \"tap\", \"name\": \"this-name-is-too-long\"}"), 4, ["name", "15"]),
            (cfg("{\"kind\": \"tap\", \"name\": \"t0\",\n \"mtu\": 20}"), 5, ["mtu", "out of range"]),
            (cfg("{\"kind\": \"tap\", \"name\": \"t0\", \"mac\": \"01:00:5e:00:00:01\"}"), 4, ["group"]),
            (cfg("{\"kind\": \"tap\", \"name\": \"t0\", \"mac\": \"02:00:00:00:00\"}"), 4, ["mac", "6 octets"]),
            (cfg("{\"kind\": \"tap\", \"name\": \"t0\", \"peer\": \"p\"}"), 4, ["veth setting"]),
            (cfg("{\"kind\": \"veth\", \"name\": \"v0\"}"), 4, ["no peer"]),
            (cfg("{\"kind\": \"veth\", \"name\": \"v0\", \"peer\": \"v0\"}"), 4, ["name of its own"]),
            (cfg("{\"kind\": \"veth\", \"name\": \"v0\", \"peer\": \"p0\", \"address\": \"10.0.0.1\"}"), 4, ["prefix length"]),
            (
                cfg("{\"kind\": \"veth\", \"name\": \"v0\", \"peer\": \"p0\", \"address\": \"10.0.0.300/24\"}"), 4,
                ["prefix length"]
            ),
            (cfg("{\"kind\": \"veth\", \"name\": \"v0\", \"peer\": \"p0\", \"netns\": \"a/b\"}"), 4, ["netns"]),
            (cfg("{\"kind\": \"attach\", \"name\": \"d0\", \"mtu\": 1500}"), 4, ["keeps its own MTU"]),
            (
                cfg("{\"kind\": \"tap\", \"name\": \"t0\"},\n{\"kind\": \"attach\", \"name\": \"t0\"}"), 5,
                ["used twice", "line 4"]
            ),
            (
                cfg("{\"kind\": \"veth\", \"name\": \"v0\", \"peer\": \"t0\"},\n{\"kind\": \"tap\", \"name\": \"t0\"}"), 5,
                ["used twice"]
            ),
            (cfg("{\"kind\": \"tap\", \"name\": \"t0\", \"extra\": 1}"), 4, ["unknown setting 'extra'"]),
            ("{\n\"bridges\": [\n{\"name\": \"vale0\",\n \"agingSeconds\": 0}]\n}", 4, ["agingSeconds", "out of range"]),
            ("{\n\"bridges\": {}\n}", 2, ["bridges must be an array"]),
            ("{\n\"bridges\": [\n{\"name\": \"vale0\", \"ports\": [1]}]\n}", 3, ["ports[0] must be an object"])
        ]
        assertRefused(cases)
    }

    func testRoundTripWritesCPUsAsTheKernelDoes() throws {
        var c = try SwaleConfig.parse(good)
        c.forwardingCPUs = [5, 0, 1, 2]
        XCTAssertTrue(c.rendered().contains("\"forwardingCPUs\": \"0-2,5\""), c.rendered())
        XCTAssertEqual(try SwaleConfig.parse(c.rendered()).forwardingCPUs, [0, 1, 2, 5])
        c.forwardingCPUs = nil
        XCTAssertFalse(c.rendered().contains("forwardingCPUs"))
    }

    func testVethPeersInNamespacesMayShareAName() throws {
        // Two containers each call their end eth0: legal, they live in different namespaces.
        let c = try SwaleConfig.parse(good)
        XCTAssertEqual(c.bridges[0].ports.compactMap(\.peer), ["eth0", "eth0"])
    }

    func testMissingFileAndNonUTF8() throws {
        XCTAssertThrowsError(try SwaleConfig.load(path: "/nonexistent/swale.json")) {
            XCTAssertTrue("\($0)".contains("/nonexistent/swale.json"))
        }
        let p = NSTemporaryDirectory() + "swale-bad-\(getpid()).json"
        try Data([0x7b, 0xff, 0x7d]).write(to: URL(fileURLWithPath: p))
        defer { try? FileManager.default.removeItem(atPath: p) }
        XCTAssertThrowsError(try SwaleConfig.load(path: p)) { XCTAssertTrue("\($0)".contains("UTF-8")) }
    }

    func testCIDR() {
        for good in ["10.0.0.1/24", "0.0.0.0/0", "fd00::1/64", "::1/128"] { XCTAssertTrue(SwaleConfig.isCIDR(good), good) }
        for bad in ["10.0.0.1", "10.0.0.1/33", "fd00::1/129", "x/1", "10.0.0.1/+4", "10.0.0.1/ 4", "/24", ""] {
            XCTAssertFalse(SwaleConfig.isCIDR(bad), bad)
        }
    }
}

/// Each (file text, line, words): parsing as c.json fails at that line with a message holding every word.
func assertRefused(_ cases: [(String, Int, [String])], file: StaticString = #filePath, line testLine: UInt = #line) {
    for (text, line, words) in cases {
        do {
            _ = try SwaleConfig.parse(text, file: "c.json")
            XCTFail("accepted:\n\(text)", file: file, line: testLine)
        } catch let e as ConfigError {
            XCTAssertEqual(e.line, line, "\(e) for\n\(text)", file: file, line: testLine)
            XCTAssertTrue(e.description.hasPrefix("c.json:\(line): "), "\(e)", file: file, line: testLine)
            for w in words { XCTAssertTrue(e.message.contains(w), "'\(w)' missing in: \(e)", file: file, line: testLine) }
        } catch { XCTFail("\(error)", file: file, line: testLine) }
    }
}

// CPUList: the kernel's list form (taskset -c, Cpus_allowed_list), both ways.
final class CPUListTests: XCTestCase {
    func testListsAndRanges() throws {
        XCTAssertEqual(try CPUList.parse("0"), [0])
        XCTAssertEqual(try CPUList.parse("1,0"), [0, 1])
        XCTAssertEqual(try CPUList.parse("0-3,2,8-8"), [0, 1, 2, 3, 8])
        XCTAssertEqual(try CPUList.parse("1023"), [1023])
        XCTAssertEqual(CPUList.render([0, 1, 2, 3, 8]), "0-3,8")
        XCTAssertEqual(CPUList.render([7, 5, 6, 1, 1]), "1,5-7")
        XCTAssertEqual(CPUList.render([]), "")
        for text in ["0", "0-1", "0,2-5,7", "3,9-10"] { XCTAssertEqual(CPUList.render(try CPUList.parse(text)), text) }
    }

    func testEveryErrorNamesTheWrongPart() {
        let cases: [(String, [String])] = [
            ("", ["empty"]),
            ("1,,2", ["empty item"]), (",1", ["empty item"]), ("1,", ["empty item"]),
            ("a", ["'a'", "not a CPU number"]), ("0x1", ["'0x1'"]), (" 1", ["' 1'"]), ("-1", ["'-1'"]),
            ("1-", ["'1-'"]), ("1-2-3", ["'1-2-3'"]), ("+1", ["'+1'"]), ("9999999999", ["'9999999999'"]),
            ("1\u{301}", ["not a CPU number"]), ("\u{0661}", ["not a CPU number"]), ("1000000", ["1000000", "beyond 1023"]),
            ("3-1", ["'3-1'", "descending", "1-3"]),
            ("1024", ["1024", "beyond 1023"]), ("0-5000", ["5000", "beyond"])
        ]
        for (text, words) in cases {
            do {
                let cpus = try CPUList.parse(text)
                XCTFail("'\(text)' was accepted as \(cpus)")
            } catch {
                for w in words { XCTAssertTrue("\(error)".contains(w), "'\(text)': \(error) lacks \(w)") }
            }
        }
    }
}
