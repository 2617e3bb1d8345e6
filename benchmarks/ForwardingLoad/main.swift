// Load generator for the forwarding benchmark (benchmarks/forwarding.py): sends one UDP frame of a
// given size as fast as the kernel takes it, in sendmmsg batches, on one interface for some seconds,
// and prints how many frames it sent. The receiving side is counted by the kernel (rx_packets).
import Foundation
import LinuxIO
import Packets

func argument(_ name: String, default value: String) -> String {
    let args = CommandLine.arguments
    guard let index = args.firstIndex(of: "--" + name), index + 1 < args.count else { return value }
    return args[index + 1]
}

let interface = argument("interface", default: "eth0")
let seconds = Double(argument("seconds", default: "3")) ?? 3
let frameSize = max(60, Int(argument("size", default: "64")) ?? 64)
let destination = MACAddress(text: argument("destination-mac", default: "02:00:00:00:00:02")) ?? .broadcast

let port: PacketPort
do { port = try PacketPort(interface: interface) } catch {
    FileHandle.standardError.write(Data("forwarding-load: \(error)\n".utf8))
    exit(2)
}
// IPv4 UDP 198.18.0.1:40000 -> 198.18.0.2:9 (RFC 2544 benchmarking addresses), padded to the frame size.
let payloadSize = frameSize - 14 - 20 - 8
let packet = IPHeaderBuilder.udpPacket(
    source: [198, 18, 0, 1], destination: [198, 18, 0, 2], sourcePort: 40000, destinationPort: 9,
    payload: [UInt8](repeating: 0x5a, count: payloadSize))
let frame = EthernetFrameView.build(destination: destination, source: MACAddress(port.mac), etherType: EtherType.ipv4, payload: packet)
let batch = 64
let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: frame.count)
storage.initialize(from: frame, count: frame.count)
let pointers = [UnsafePointer<UInt8>?](repeating: UnsafePointer(storage), count: batch)
let lengths = [Int32](repeating: Int32(frame.count), count: batch)
var sent = 0
var refused = 0
let start = monotonicSeconds()
var now = start
while now - start < seconds {
    for _ in 0..<16 {
        let result = port.send(frames: pointers, lengths: lengths)
        sent += result.sent
        refused += result.refused
    }
    now = monotonicSeconds()
}
print("{\"sent\": \(sent), \"refused\": \(refused), \"seconds\": \(now - start), \"frame_size\": \(frame.count)}")
