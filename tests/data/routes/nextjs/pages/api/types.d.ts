export declare type Id = string;
