// swale-cni — the CNI plugin that attaches containers to a Swale bridge (SwaleCNI/Plugin.swift).
// Runtimes exec it with CNI_* variables and the network configuration on stdin.
import Foundation
import SwaleCNI

// An IPAM plugin that exits before reading its stdin must not kill us: we report its failure.
signal(SIGPIPE, SIG_IGN)
let input = FileHandle.standardInput.readDataToEndOfFile()
let (output, status) = CNIPlugin.run(env: ProcessInfo.processInfo.environment, stdin: input)
FileHandle.standardOutput.write(output)
exit(status)
