// swale-cni — the CNI plugin that attaches containers to a Swale bridge (SwaleCNI/Plugin.swift).
// Runtimes exec it with CNI_* variables and the network configuration on stdin.
import Foundation
import SwaleCNI

let input = FileHandle.standardInput.readDataToEndOfFile()
let (output, status) = CNIPlugin.run(env: ProcessInfo.processInfo.environment, stdin: input)
FileHandle.standardOutput.write(output)
exit(status)
