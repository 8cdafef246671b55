; helper calls, a bpf-to-bpf call, 64-bit immediates, legacy packet loads (r6 = skb)
r6 = r1
r0 = *(u8 *)skb[12]
r0 = *(u16 *)skb[12]
r0 = *(u32 *)skb[12]
r7 = 2
r0 = *(u8 *)skb[r7 + 10]
r0 = *(u16 *)skb[r7 + 10]
r0 = *(u32 *)skb[r7 + 10]
r1 = 0x123456789abcdef0
r2 = 0xffffffffffffffff
call bpf_ktime_get_ns#5
call bpf_get_prandom_u32#7
call pc+2
r0 = 0
exit
r0 = 1
exit
