/* Stack painting, private to the board support code. */
#ifndef TTE_STACK_IMPL_H
#define TTE_STACK_IMPL_H

/* Fills the unused stack (from its limit up to the current stack pointer) with
 * a pattern, so board_stack_high_water() can later find the deepest use. */
void stack_paint(void);

#endif /* TTE_STACK_IMPL_H */
