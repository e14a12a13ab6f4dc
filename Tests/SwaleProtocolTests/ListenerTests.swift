// The control socket's file appears only once it accepts connections (bound under a neighbouring
// name, listened on, renamed into place): a client that waits for the file never gets refused.
import Foundation
import Glibc
import SwaleProtocol
import XCTest

final class ListenerTests: XCTestCase {
    func testPathAppearsListeningWithItsModeAndNoStagingLeft() throws {
        let dir = NSTemporaryDirectory() + "swale-listener-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/s.sock"
        // A leftover staging name from a crash is replaced, not an error.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: path + "~", contents: Data("stale".utf8)))

        let l = try ControlListener(path: path)
        defer { l.close() }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "~"), "staging name renamed away")
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(st.st_mode & 0o777, 0o660)
        let c = try ControlConnection.connect(path: path)  // accepted by the backlog at once
        c.close()
        XCTAssertThrowsError(try ControlListener(path: path), "a second listener on a served path") { e in
            XCTAssertTrue("\(e)".contains("already serving"), "\(e)")
        }
    }
}
