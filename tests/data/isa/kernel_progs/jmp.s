; every conditional jump, 64 and 32 bits, immediate and register; goto, gotol, may_goto
r1 = 5
r2 = 7
r0 = 0
if r1 == 0x5 goto pc+0
if r1 != 0x6 goto pc+0
if r1 > 0x1 goto pc+0
if r1 >= 0x1 goto pc+0
if r1 < 0x9 goto pc+0
if r1 <= 0x9 goto pc+0
if r1 & 0x4 goto pc+0
if r1 s> 0x1 goto pc+0
if r1 s>= 0x1 goto pc+0
if r1 s< 0x9 goto pc+0
if r1 s<= 0x9 goto pc+0
if r1 == r2 goto pc+0
if r1 != r2 goto pc+0
if r1 > r2 goto pc+0
if r1 >= r2 goto pc+0
if r1 < r2 goto pc+0
if r1 <= r2 goto pc+0
if r1 & r2 goto pc+0
if r1 s> r2 goto pc+0
if r1 s>= r2 goto pc+0
if r1 s< r2 goto pc+0
if r1 s<= r2 goto pc+0
if w1 == 0x5 goto pc+0
if w1 != 0x6 goto pc+0
if w1 > 0x1 goto pc+0
if w1 >= 0x1 goto pc+0
if w1 < 0x9 goto pc+0
if w1 <= 0x9 goto pc+0
if w1 & 0x4 goto pc+0
if w1 s> 0xffffffff goto pc+0
if w1 s>= 0x1 goto pc+0
if w1 s< 0x9 goto pc+0
if w1 s<= 0x9 goto pc+0
if w1 == w2 goto pc+0
if w1 != w2 goto pc+0
if w1 > w2 goto pc+0
if w1 >= w2 goto pc+0
if w1 < w2 goto pc+0
if w1 <= w2 goto pc+0
if w1 & w2 goto pc+0
if w1 s> w2 goto pc+0
if w1 s>= w2 goto pc+0
if w1 s< w2 goto pc+0
if w1 s<= w2 goto pc+0
goto pc+0
r0 = 1
gotol pc+0
r0 = 2
may_goto pc+1
r0 = 3
exit
