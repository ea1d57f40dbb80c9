-- tp4emu-udp.lua: let Wireshark/tshark decode tp4emu's ISO 8073 (COTP)
-- traffic carried over UDP.
--
-- Wireshark's COTP dissector ("ositp") has no UDP binding of its own; this
-- script adds one for the ports in the "tp4emu.ports" preference (a range,
-- default 10200). Each UDP datagram is one NSDU: one TPDU or several
-- concatenated ones, which the dissector walks through.
--
--   tshark -X lua_script:tp4emu/capture/tp4emu-udp.lua -i lo -f 'udp port 10200'
--   tshark -X lua_script:tp4emu/capture/tp4emu-udp.lua -o 'tp4emu.ports:10200,10300-10310' -r capture.pcap
--
-- It ships inside the tp4emu package: `tp4emu wireshark --lua` prints its
-- path, and `tp4emu wireshark FILE` runs tshark with it (and with the options
-- that keep heuristic dissectors off the user data).
--
-- Wireshark: copy it to the personal Lua plugins folder (see Help > About >
-- Folders, usually ~/.local/lib/wireshark/plugins/) and set the ports under
-- Edit > Preferences > Protocols > TP4EMU.
-- Tested with Wireshark/tshark 4.0. See docs/wireshark.md.

local DEFAULT_PORTS = "10200"

local tp4emu = Proto("tp4emu", "tp4emu: ISO 8073 COTP over UDP")
tp4emu.prefs.ports = Pref.range(
    "UDP ports",
    DEFAULT_PORTS,
    "UDP ports whose datagrams are decoded as COTP (ISO 8073 TPDUs)",
    65535
)

local udp_table = DissectorTable.get("udp.port")
local cotp = Dissector.get("ositp")
local bound = nil -- the port range currently registered

local function bind()
    if bound ~= nil then
        udp_table:remove(bound, cotp)
    end
    bound = tp4emu.prefs.ports
    udp_table:add(bound, cotp)
end

-- Called at start-up after the preferences are read (including -o) and
-- whenever the user changes them.
function tp4emu.prefs_changed()
    bind()
end

bind()
