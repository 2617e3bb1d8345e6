import IKEv2

/// A loop that writes log lines through one function (the endpoint's and the daemon's): `log` takes a line of text,
/// or a `LogLine` with the facts the JSON log carries.
public protocol LogWriting {
    var writeLog: (LogLine) -> Void { get }
}

extension LogWriting {
    public func log(_ text: String) { writeLog(LogLine(text)) }
    public func log(_ line: LogLine) { writeLog(line) }
}
