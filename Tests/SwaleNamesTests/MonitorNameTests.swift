// Monitor suffixes on bridge-port names (netmap's /r, /t, /rt).
import SwaleNames
import XCTest

final class MonitorNameTests: XCTestCase {
    func testMonitorSuffixesParseAndPrintBack() throws {
        for (text, m, canonical) in [
            ("vale0:p1/r", PortName.Monitor.rx, "vale0:p1/r"), ("vale0:p1/t", .tx, "vale0:p1/t"),
            ("vale0:p1/rt", .both, "vale0:p1/rt"), ("vale0:p1/tr", .both, "vale0:p1/rt")
        ] {
            let n = try PortName.parse(text)
            XCTAssertEqual(n.monitor, m, text)
            XCTAssertEqual(n.port, "p1")
            XCTAssertNil(n.pipe)
            XCTAssertEqual(n.description, canonical)
            XCTAssertEqual(try PortName.parse(n.description), n)
        }
        XCTAssertNotEqual(try PortName.parse("vale0:p1/r"), try PortName.parse("vale0:p1"))
        XCTAssertTrue(PortName.Monitor.both.copiesRx && PortName.Monitor.both.copiesTx)
        XCTAssertFalse(PortName.Monitor.rx.copiesTx)
    }

    func testOtherSuffixesAreRefusedWithAReason() {
        assertRejected("vale0:p1/z", at: 8, "zero-copy monitors", "not supported")
        assertRejected("vale0:p1/zr", at: 8, "zero-copy")
        assertRejected("vale0:p1/x", at: 8, "ring selection", "'/x'")
        assertRejected("vale0:p1/r/t", at: 8, "'/r'")
        assertRejected("vale0:p1/", at: 8, "'/'")
        assertRejected("vale0:p1<1/r", at: 10, "'/r'")
        assertRejected("eth0/r", at: 4, "'/r'")
    }
}
