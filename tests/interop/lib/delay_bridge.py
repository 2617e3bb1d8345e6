"""A bump in the wire in user space, for links that must reorder (this kernel has no netem): frames are read on
one interface with AF_PACKET and written out of the other, both ways; a share of them is dropped, and a share is
held back for a random delay so that later frames overtake it. Run in a namespace that holds both interfaces:

    python3 lib/delay_bridge.py IF_A IF_B DROP_PERCENT DELAY_PERCENT MIN_MS MAX_MS STATS_FILE

Until killed; on SIGTERM it writes `forwarded N dropped N delayed N overtaken N` to STATS_FILE (overtaken: frames
that left after a frame that arrived later, i.e. what was reordered)."""
import heapq, random, select, signal, socket, sys, time

ETH_P_ALL = 0x0003


def main():
    a, b = sys.argv[1], sys.argv[2]
    drop, delay = float(sys.argv[3]) / 100, float(sys.argv[4]) / 100
    low, high = float(sys.argv[5]) / 1000, float(sys.argv[6]) / 1000
    stats_file = sys.argv[7]
    trace = open(stats_file + ".trace", "w", buffering=1)  # one line per frame: time, direction, fate, length
    sockets = {}
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        sockets[name] = s
    other = {a: sockets[b], b: sockets[a]}
    by_fd = {sockets[n].fileno(): n for n in (a, b)}
    held = []  # (due, arrival order, socket, frame)
    stats = {"forwarded": 0, "dropped": 0, "delayed": 0, "overtaken": 0}
    arrivals = 0
    last_sent_order = -1

    def finish(*_):
        with open(stats_file, "w") as f:
            f.write(" ".join(f"{k} {v}" for k, v in stats.items()) + "\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, finish)

    def send(out, frame, order):
        nonlocal last_sent_order
        try:
            out.send(frame)
        except OSError:
            return
        stats["forwarded"] += 1
        if order < last_sent_order:
            stats["overtaken"] += 1
        last_sent_order = max(last_sent_order, order)

    while True:
        timeout = max(0.0, held[0][0] - time.time()) if held else 0.5
        ready, _, _ = select.select(list(sockets.values()), [], [], timeout)
        for s in ready:
            name = by_fd[s.fileno()]
            while True:
                try:
                    frame, address = s.recvfrom(65535)
                except BlockingIOError:
                    break
                if address[2] == socket.PACKET_OUTGOING:
                    continue  # what we ourselves wrote out of this interface
                arrivals += 1
                roll = random.random()
                if roll < drop:
                    stats["dropped"] += 1
                    fate = "dropped"
                elif roll < drop + delay:
                    stats["delayed"] += 1
                    heapq.heappush(held, (time.time() + random.uniform(low, high), arrivals, other[name], frame))
                    fate = "delayed"
                else:
                    send(other[name], frame, arrivals)
                    fate = "forwarded"
                trace.write(f"{time.time():.3f} {arrivals} from {name} {fate} {len(frame)}\n")
        now = time.time()
        while held and held[0][0] <= now:
            _, order, out, frame = heapq.heappop(held)
            send(out, frame, order)


if __name__ == "__main__":
    main()
